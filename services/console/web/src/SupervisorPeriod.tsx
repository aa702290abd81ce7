import { useCallback, useEffect, useRef, useState } from "react";
import { api, type Figures, type LiveEvent, type PeriodFigures, type Spread, type Team } from "./api";
import { duration } from "./format";
import { useReloadAfter } from "./useReloadAfter";

const PERIODS = { today: "Today", yesterday: "Yesterday", week: "Last 7 days", month: "Last 30 days", custom: "Dates…" } as const;
type Period = keyof typeof PERIODS;
const NO_TEAM = "-"; // the router's group of conversations without a team
const DAY_MS = 24 * 3600 * 1000;
const MAX_DAYS = 31; // the router's longest period

/** Midnight of `date`'s day, in the supervisor's own time zone (the browser's). */
function midnight(date: Date): Date {
  const day = new Date(date);
  day.setHours(0, 0, 0, 0);
  return day;
}

/** The days typed in the date fields ("YYYY-MM-DD", `until` included) as local midnights. */
function typedDays(from: string, to: string): [Date, Date] | string {
  if (!from || !to) return "Pick the first and the last day.";
  const since = new Date(`${from}T00:00`);
  const until = new Date(new Date(`${to}T00:00`).getTime() + DAY_MS);
  if (!(since < until)) return "The first day must not be after the last.";
  if (until.getTime() - since.getTime() > MAX_DAYS * DAY_MS) return `At most ${MAX_DAYS} days.`;
  return [since, until];
}

/** The period asked for, or why it cannot be asked. */
function rangeOf(period: Period, now: Date, from: string, to: string): [Date, Date] | string {
  if (period === "custom") return typedDays(from, to);
  if (period === "yesterday") return [new Date(midnight(now).getTime() - DAY_MS), midnight(now)];
  if (period === "week") return [new Date(now.getTime() - 7 * DAY_MS), now];
  if (period === "month") return [new Date(now.getTime() - 30 * DAY_MS), now];
  return [midnight(now), now];
}

const isoDay = (date: Date) => `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;

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
  const [from, setFrom] = useState(() => isoDay(new Date(Date.now() - 6 * DAY_MS)));
  const [to, setTo] = useState(() => isoDay(new Date()));
  const [figures, setFigures] = useState<PeriodFigures | null>(null);
  const [problem, setProblem] = useState("");

  const latest = useRef(0); // an answer for a period no longer asked is dropped
  const load = useCallback(async () => {
    const asked = ++latest.current;
    const range = rangeOf(period, new Date(), from, to);
    if (typeof range === "string") {
      setProblem(range);
      setFigures(null);
      return;
    }
    try {
      const found = await api<PeriodFigures>("/v1/supervisor/period", {
        query: { since: range[0].toISOString(), until: range[1].toISOString() },
      });
      if (asked !== latest.current) return;
      setFigures(found);
      setProblem("");
    } catch (error) {
      if (asked === latest.current) setProblem(error instanceof Error ? error.message : "not loaded");
    }
  }, [period, from, to]);

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
        {period === "custom" && (
          <>
            <label>From <input type="date" value={from} max={to} onChange={(e) => setFrom(e.target.value)} /></label>
            <label>To (included) <input type="date" value={to} min={from} onChange={(e) => setTo(e.target.value)} /></label>
          </>
        )}
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
