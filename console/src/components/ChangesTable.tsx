import type { ConfigChange } from '../api/types';
import { changeRow } from '../format';

const KIND: Record<ConfigChange['kind'], string> = {
  ADDED: 'added',
  CHANGED: 'changed',
  REMOVED: 'removed',
  UNCHANGED: 'unchanged',
};

/** A configuration diff; secrets' values are masked (the API sends none anyway). */
export function ChangesTable(props: { changes: ConfigChange[]; caption: string }): preact.JSX.Element {
  if (props.changes.length === 0) return <p class="empty">No configuration values.</p>;
  return (
    <div class="table-scroll">
      <table class="changes">
        <caption class="visually-hidden">{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Now</th>
            <th scope="col">After</th>
            <th scope="col">Change</th>
          </tr>
        </thead>
        <tbody>
          {props.changes.map((change) => {
            const row = changeRow(change);
            return (
              <tr key={change.key} class={`change-${change.kind.toLowerCase()}`}>
                <th scope="row">
                  <code>{row.key}</code>
                </th>
                <td>{row.before}</td>
                <td>{row.after}</td>
                <td>{KIND[change.kind]}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
