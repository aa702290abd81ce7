import { useEffect, useMemo, useState } from "react";
import { api, ApiError, type Template } from "./api";

interface Props {
  channelId: string;
  required: boolean;
  onSend: (template: Template, variables: Record<string, string>) => Promise<void>;
  onCancel: () => void;
}

interface Variable {
  key: string;
  label: string;
  type: string;
  options: string[];
}

/** The body's placeholders ({{1}}, {{name}}), typed by the template's own variable list where it has one. */
function variablesOf(template: Template): Variable[] {
  const keys = [...new Set([...template.body.matchAll(/\{\{\s*([\w.]+)\s*\}\}/g)].map((m) => m[1]))];
  return keys.map((key, index) => {
    const declared = template.variables?.find((v) => v.name === key) ?? template.variables?.[index];
    return { key, label: declared?.name && declared.name !== key ? `${key} (${declared.name})` : key, type: declared?.type ?? "text", options: declared?.options ?? [] };
  });
}

export function TemplatePicker({ channelId, required, onSend, onCancel }: Props) {
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [problem, setProblem] = useState("");
  const [chosen, setChosen] = useState("");
  const [values, setValues] = useState<Record<string, string>>({});

  useEffect(() => {
    api<Template[] | { items: Template[] }>("/v1/templates", { query: { channel_id: channelId } })
      .then((found) => setTemplates((Array.isArray(found) ? found : found.items).filter((t) => t.status === "approved")))
      .catch((error) => setProblem(error instanceof ApiError && error.status === 403 ? "Your role may not list templates yet." : "Templates could not be loaded."));
  }, [channelId]);

  const template = templates?.find((t) => `${t.name}/${t.language}` === chosen);
  const variables = useMemo(() => (template ? variablesOf(template) : []), [template]);
  const preview = template ? template.body.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, key: string) => values[key] || `{{${key}}}`) : "";
  const complete = variables.every((v) => values[v.key]?.trim());

  return (
    <form className="template-picker" aria-label="Template" onSubmit={(event) => {
      event.preventDefault();
      if (template && complete) void onSend(template, Object.fromEntries(variables.map((v) => [v.key, values[v.key].trim()])));
    }}>
      {required && <p className="muted">The customer's window is closed: only an approved template may go out.</p>}
      {problem && <p role="alert" className="error">{problem}</p>}
      <label>Template
        <select value={chosen} onChange={(e) => { setChosen(e.target.value); setValues({}); }}>
          <option value="">choose…</option>
          {templates?.map((t) => <option key={`${t.name}/${t.language}`} value={`${t.name}/${t.language}`}>{t.name} ({t.language})</option>)}
        </select>
      </label>
      {variables.map((v) => (
        <label key={v.key}>Variable {v.label} <span className="muted">(required)</span>
          {v.type === "dropdown" && v.options.length ? (
            <select required value={values[v.key] ?? ""} onChange={(e) => setValues({ ...values, [v.key]: e.target.value })}>
              <option value="">choose…</option>
              {v.options.map((o) => <option key={o}>{o}</option>)}
            </select>
          ) : (
            <input required type={v.type === "date" ? "date" : "text"} value={values[v.key] ?? ""}
                   onChange={(e) => setValues({ ...values, [v.key]: e.target.value })} />
          )}
        </label>
      ))}
      {template && <p className="preview" aria-label="Preview">{template.header?.text && <strong>{template.header.text}<br /></strong>}{preview}</p>}
      <div className="buttons">
        <button type="submit" className="primary" disabled={!template || !complete}>Send template</button>
        {!required && <button type="button" onClick={onCancel}>Cancel</button>}
      </div>
    </form>
  );
}
