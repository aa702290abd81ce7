import { useCallback, useEffect, useState } from "react";
import { api, loadOf, type Agent, type Conversation, type Counts, type LiveEvent, type Page, type PushedCounts, type Team } from "./api";
import { customerLabel, since } from "./format";
import { SupervisorPeriod } from "./SupervisorPeriod";
import { useNow } from "./useNow";
import { useReloadAfter } from "./useReloadAfter";

/** The live queue, the agents and the teams now. */
export function Supervisor({ lastEvent, counts: pushed }: { lastEvent: LiveEvent | null; counts: PushedCounts | null }) {
  const [agents, setAgents] = useState<Agent[]>([]);
  const [teams, setTeams] = useState<Team[]>([]);
  const [queue, setQueue] = useState<Conversation[]>([]);
  const [problem, setProblem] = useState("");
  const now = useNow(1000);

  const load = useCallback(async () => {
    try {
      const [a, t, q] = await Promise.all([
        api<{ items: Agent[] }>("/v1/agents"),
        api<{ items: Team[] }>("/v1/teams"),
        api<Page<Conversation>>("/v1/conversations", { query: { status: "queued", sort: "waiting", limit: 100 } }),
      ]);
      setAgents(a.items); setTeams(t.items); setQueue(q.items); setProblem("");
    } catch (error) {
      setProblem(error instanceof Error ? error.message : "not loaded");
    }
  }, []);

  useEffect(() => { void load(); }, [load]);
  useReloadAfter(lastEvent, load, 500);

  const counts: Counts = pushed?.counts ?? {};
  const longest = queue.reduce<string | null>((oldest, c) => (c.waiting_since && (!oldest || c.waiting_since < oldest) ? c.waiting_since : oldest), null);
  return (
    <main className="supervisor" id="main">
      <h1>Supervisor</h1>
      {problem && <p role="alert" className="error">{problem}</p>}
      <section aria-labelledby="now-title" className="cards">
        <h2 id="now-title" className="sr-only">Now</h2>
        <div className="card"><span className="big">{counts.queued ?? "–"}</span> queued</div>
        <div className="card"><span className="big">{longest ? since(longest, now) : "–"}</span> longest wait</div>
        <div className="card"><span className="big">{counts.assigned ?? "–"}</span> assigned</div>
        <div className="card"><span className="big">{counts.unanswered ?? "–"}</span> unanswered</div>
        <div className="card"><span className="big">{agents.filter((a) => a.presence === "online").length}</span> online</div>
        <div className="card"><span className="big">{agents.filter((a) => a.presence === "away").length}</span> away</div>
      </section>
      <SupervisorPeriod teams={teams} lastEvent={lastEvent} />
      <div className="columns">
        <section aria-labelledby="agents-title">
          <h2 id="agents-title">Agents</h2>
          <table aria-labelledby="agents-title">
            <thead><tr><th scope="col">Agent</th><th scope="col">Presence</th><th scope="col">Teams</th><th scope="col">Load (active / capacity)</th></tr></thead>
            <tbody>
              {agents.map((a) => (
                <tr key={a.login}>
                  <th scope="row">{a.login}</th>
                  <td><span className={`dot dot-${a.presence}`} aria-hidden="true" /> {a.presence}</td>
                  <td>{a.teams.join(", ")}</td>
                  <td className="load">{loadOf(a).map((l) => `${l.channel} ${l.active}/${l.max}`).join(", ") || `0/${a.default_capacity}`}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Teams</h2>
          <table>
            <thead><tr><th scope="col">Team</th><th scope="col">Members</th><th scope="col">Online</th></tr></thead>
            <tbody>
              {teams.map((t) => (
                <tr key={t.id}>
                  <th scope="row">{t.name ?? t.id}</th>
                  <td>{t.members.join(", ")}</td>
                  <td>{t.members.filter((m) => agents.find((a) => a.login === m)?.presence === "online").length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section aria-labelledby="queue-title">
          <h2 id="queue-title">Queue, longest wait first</h2>
          {queue.length === 0 ? <p className="muted">The queue is empty.</p> : (
            <table>
              <thead><tr><th scope="col">Customer</th><th scope="col">Channel</th><th scope="col">Team</th><th scope="col">Waiting</th></tr></thead>
              <tbody>
                {queue.map((c) => (
                  <tr key={c.id}><th scope="row">{customerLabel(c)}</th><td>{c.channel_id}</td><td>{c.team_id ?? "–"}</td><td>{since(c.waiting_since, now)}</td></tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>
    </main>
  );
}
