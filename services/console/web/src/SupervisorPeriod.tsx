import { useCallback, useEffect, useState } from "react";
import { api, type Figures, type LiveEvent, type PeriodFigures, type Spread, type Team } from "./api";
import { duration } from "./format";
import { useReloadAfter } from "./useReloadAfter";

const PERIODS = { today: "Today", week: "Last 7 days" } as const;
type Period = keyof typeof PERIODS;
const NO_TEAM = "-"; // the router's group of conversations without a team
const DAY_MS = 24 * 3600 * 1000;

function sinceOf(period: Period, now: Date): Date {
  if (period === "week") return new Date(now.getTime() - 7 * DAY_MS);
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0); // the supervisor's own day, in the browser's time zone
  return midnight;
}

const seconds = (value: number | null) => (value === null ? "–" : duration(value));
const spread = (s: Spread) => [<td key="median">{seconds(s.median)}</td>, <td key="p90">{seconds(s.p90)}</td>];

function Row({ name, figures }: { name: string; figures: Figures }) {
  return (
    <tr>
      <th scope="row">{name}</th>
      <td>{figures.opened}</td>
      <td>{figures.closed}</td>
      {spread(figures.first_response_seconds)}
      {spread(figures.wait_seconds)}
    </tr>
  );
}

/** The figures of a period from the router: first response and wait (median, p90), opened and closed, in total,
 * per team and per agent. Reloaded a few seconds after live changes (the router scans the period for them). */
export function SupervisorPeriod({ teams, lastEvent }: { teams: Team[]; lastEvent: LiveEvent | null }) {
  const [period, setPeriod] = useState<Period>("today");
  const [figures, setFigures] = useState<PeriodFigures | null>(null);
  const [problem, setProblem] = useState("");

  const load = useCallback(async () => {
    const now = new Date();
    try {
      setFigures(await api<PeriodFigures>("/v1/supervisor/period", {
        query: { since: sinceOf(period, now).toISOString(), until: now.toISOString() },
      }));
      setProblem("");
    } catch (error) {
      setProblem(error instanceof Error ? error.message : "not loaded");
    }
  }, [period]);

  useEffect(() => { void load(); }, [load]);
  useReloadAfter(lastEvent, load, 3000);

  const teamName = (id: string) => (id === NO_TEAM ? "No team" : teams.find((t) => t.id === id)?.name ?? id);
  return (
    <section aria-labelledby="period-title" className="period">
      <div className="period-head">
        <h2 id="period-title">Figures of the period</h2>
        <label htmlFor="period-pick">Period</label>
        <select id="period-pick" value={period} onChange={(e) => setPeriod(e.target.value as Period)}>
          {Object.entries(PERIODS).map(([value, label]) => <option key={value} value={value}>{label}</option>)}
        </select>
      </div>
      {problem && <p role="alert" className="error">{problem}</p>}
      {figures && (
        <table aria-labelledby="period-title">
          <thead>
            <tr>
              <th scope="col" rowSpan={2}>Who</th><th scope="col" rowSpan={2}>Opened</th><th scope="col" rowSpan={2}>Closed</th>
              <th scope="colgroup" colSpan={2}>First response</th><th scope="colgroup" colSpan={2}>Wait for an agent</th>
            </tr>
            <tr><th scope="col">Median</th><th scope="col">p90</th><th scope="col">Median</th><th scope="col">p90</th></tr>
          </thead>
          <tbody>
            <Row name="All" figures={figures.total} />
            {figures.teams.map((t) => <Row key={`team-${t.team_id}`} name={`Team ${teamName(t.team_id)}`} figures={t} />)}
            {figures.agents.map((a) => <Row key={`agent-${a.login}`} name={a.login} figures={a} />)}
          </tbody>
        </table>
      )}
    </section>
  );
}
