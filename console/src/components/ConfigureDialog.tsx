// An environment's configuration: plain values edited in place, secrets write-only (a secret's
// field is always empty; what is typed replaces the value), removals, and an optional restart.
import { useState } from 'preact/hooks';

import { SET_CONFIGURATION } from '../api/documents';
import type { Deployment, Environment, Integration } from '../api/types';
import { entryField, isProblem, showProblem, type Problem, type Shown } from '../errors';
import { useSession } from '../hooks';
import { configurationEntries } from '../overrides';
import { Dialog, ErrorSummary, FieldError, ValueInput } from './ui';

type Result = { __typename: 'Deployment' | 'Promotion'; id: string } | Problem;

export function ConfigureDialog(props: {
  integration: Integration;
  environment: Environment;
  deployment: Deployment | undefined;
  onClose: (changed: boolean) => void;
}): preact.JSX.Element {
  const { api } = useSession();
  const configuration = props.deployment?.configuration ?? [];
  const current = Object.fromEntries(configuration.map((value) => [value.key, value.value]));
  const isSet = new Set(configuration.map((value) => value.key));
  const [typed, setTyped] = useState<Record<string, string>>(() =>
    Object.fromEntries(configuration.filter((v) => !v.secret && v.value !== null).map((v) => [v.key, v.value ?? ''])),
  );
  const [removed, setRemoved] = useState<Set<string>>(new Set());
  const [restart, setRestart] = useState(false);
  const [shown, setShown] = useState<Shown>({ summary: '', fields: {} });
  const [busy, setBusy] = useState(false);
  const missing = new Set(props.deployment?.missingConfiguration ?? []);

  const save = async (): Promise<void> => {
    const entries = configurationEntries(current, typed, removed);
    if (entries.length === 0 && !restart) {
      setShown({ summary: 'Nothing changed.', fields: {} });
      return;
    }
    setBusy(true);
    setShown({ summary: '', fields: {} });
    try {
      const data = await api.request<{ setConfiguration: Result }>(SET_CONFIGURATION, {
        input: {
          integrationId: props.integration.id,
          environmentId: props.environment.id,
          entries,
          restart,
        },
      });
      const result = data.setConfiguration;
      if (isProblem(result)) {
        setShown(showProblem(result, entryField('entries', entries.map((e) => e.key), (key) => key)));
      } else {
        setTyped({});
        props.onClose(true);
      }
    } catch (error) {
      setShown({ summary: error instanceof Error ? error.message : String(error), fields: {} });
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Configuration of ${props.integration.name} in ${props.environment.name}`} onClose={() => props.onClose(false)}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        {props.integration.configSchema.length === 0 ? <p>This integration declares no configuration keys.</p> : null}
        {props.integration.configSchema.map((key) => {
          const id = `config-${key.key}`;
          const error = shown.fields[key.key];
          const secretState = isSet.has(key.key) ? 'set; type a new value to replace it' : 'not set';
          return (
            <div class="field" key={key.key}>
              <label for={id}>
                <code>{key.key}</code>
                {key.secret ? ' (secret)' : ''}
                {key.required ? <span class="required"> required</span> : null}
                {missing.has(key.key) ? <span class="required">, missing</span> : null}
              </label>
              {key.description ? <p class="hint">{key.description}</p> : null}
              {key.secret ? <p class="hint">Value {secretState}.</p> : null}
              <ValueInput
                id={id}
                name={key.key}
                secret={key.secret}
                placeholder={key.defaultValue !== null && !key.secret ? `default: ${key.defaultValue}` : undefined}
                value={typed[key.key] ?? ''}
                disabled={removed.has(key.key)}
                error={error}
                onValue={(value) => setTyped({ ...typed, [key.key]: value })}
              />
              {isSet.has(key.key) && !key.required ? (
                <label class="inline-check">
                  <input
                    type="checkbox"
                    checked={removed.has(key.key)}
                    onChange={(event) => {
                      const next = new Set(removed);
                      if (event.currentTarget.checked) next.add(key.key);
                      else next.delete(key.key);
                      setRemoved(next);
                    }}
                  />{' '}
                  Remove {key.key}'s value
                </label>
              ) : null}
              <FieldError id={id} message={error} />
            </div>
          );
        })}
        <div class="field field-check">
          <input id="restart-now" type="checkbox" checked={restart} onChange={(event) => setRestart(event.currentTarget.checked)} />
          <label for="restart-now">Restart now, so that the change takes effect</label>
        </div>
        <ErrorSummary message={shown.summary} />
        <div class="dialog-actions">
          <button type="button" onClick={() => props.onClose(false)}>
            Cancel
          </button>
          <button type="submit" class="button-primary" disabled={busy}>
            {busy ? 'Saving…' : 'Save'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
