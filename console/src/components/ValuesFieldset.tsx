// Configuration values typed for one environment: a field per key of the integration's schema
// (a password field for a secret), each with its error; empty means "leave it as it is".
import type { ConfigKey } from '../api/types';
import { FieldError, ValueInput } from './ui';

export function ValuesFieldset(props: {
  idPrefix: string;
  legend: string;
  hint: string;
  schema: ConfigKey[];
  values: Record<string, string>;
  onValues: (values: Record<string, string>) => void;
  missing: ReadonlySet<string>;
  errors: Record<string, string>;
}): preact.JSX.Element {
  return (
    <fieldset>
      <legend>{props.legend}</legend>
      <p class="hint">{props.hint}</p>
      {props.schema.map((key) => {
        const id = `${props.idPrefix}-${key.key}`;
        const error = props.errors[key.key];
        return (
          <div class="field" key={key.key}>
            <label for={id}>
              <code>{key.key}</code>
              {key.secret ? ' (secret)' : ''}
              {props.missing.has(key.key) ? <span class="required"> required, missing</span> : null}
            </label>
            {key.description ? <p class="hint">{key.description}</p> : null}
            <ValueInput
              id={id}
              name={key.key}
              secret={key.secret}
              placeholder={key.defaultValue !== null && !key.secret ? `default: ${key.defaultValue}` : undefined}
              value={props.values[key.key] ?? ''}
              error={error}
              onValue={(value) => props.onValues({ ...props.values, [key.key]: value })}
            />
            <FieldError id={id} message={error} />
          </div>
        );
      })}
    </fieldset>
  );
}
