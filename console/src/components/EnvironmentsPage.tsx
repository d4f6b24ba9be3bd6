// The organization's environments in order; admins freeze and unfreeze them.
import { useState } from 'preact/hooks';

import { ENVIRONMENTS, FREEZE, UNFREEZE } from '../api/documents';
import type { Environment } from '../api/types';
import { isProblem, showProblem, type Problem } from '../errors';
import { useQuery, useRole, useSession } from '../hooks';
import { describedBy, ErrorSummary, FieldError, LoadError, Loading } from './ui';

interface Data {
  organization: { id: string; environments: Environment[] } | null;
}

export function EnvironmentsPage(props: { org: string }): preact.JSX.Element {
  const { data, error, reload } = useQuery<Data>(ENVIRONMENTS, { slug: props.org });
  const admin = useRole(props.org) === 'ADMIN';
  if (error) return <LoadError error={error} retry={reload} />;
  if (!data) return <Loading what="environments" />;
  const environments = data.organization?.environments ?? [];
  return (
    <section>
      <h1>Environments</h1>
      <ol class="environment-list">
        {environments.map((environment) => (
          <li key={environment.id} class="card">
            <EnvironmentRow environment={environment} admin={admin} onDone={reload} />
          </li>
        ))}
      </ol>
    </section>
  );
}

type Result = { __typename: 'Environment' } | Problem;

function EnvironmentRow(props: { environment: Environment; admin: boolean; onDone: () => void }): preact.JSX.Element {
  const { api } = useSession();
  const { environment } = props;
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState<{ summary: string; reason?: string | undefined }>({ summary: '' });
  const reasonId = `freeze-reason-${environment.id}`;

  const run = async (freeze: boolean): Promise<void> => {
    setProblem({ summary: '' });
    try {
      const data = await api.request<Record<string, Result>>(
        freeze ? FREEZE : UNFREEZE,
        freeze ? { id: environment.id, reason: reason.trim() } : { id: environment.id },
      );
      const result = data[freeze ? 'freezeEnvironment' : 'unfreezeEnvironment'];
      if (result && isProblem(result)) {
        const shown = showProblem(result);
        setProblem({ summary: shown.summary, reason: shown.fields.reason });
      } else {
        setReason('');
        props.onDone();
      }
    } catch (error) {
      setProblem({ summary: error instanceof Error ? error.message : String(error) });
    }
  };

  return (
    <>
      <header class="card-header">
        <h2>{environment.name}</h2>
        {environment.frozen ? <span class="badge badge-error">Frozen</span> : <span class="badge badge-active">Open</span>}
      </header>
      <p class="card-flags">
        {environment.critical ? <span class="flag">Critical</span> : null}
        {environment.approvalPolicy ? (
          <span class="flag">
            Protected: {environment.approvalPolicy.requiredApprovals} approval
            {environment.approvalPolicy.requiredApprovals === 1 ? '' : 's'}
          </span>
        ) : null}
      </p>
      {environment.frozen ? <p>Frozen: {environment.freezeReason}</p> : null}
      <ErrorSummary message={problem.summary} />
      {props.admin ? (
        environment.frozen ? (
          <button type="button" onClick={() => void run(false)}>
            Unfreeze {environment.name}
          </button>
        ) : (
          <form
            class="inline-form"
            onSubmit={(event) => {
              event.preventDefault();
              void run(true);
            }}
          >
            <label for={reasonId}>Reason to freeze {environment.name}</label>
            <input
              id={reasonId}
              value={reason}
              required
              aria-invalid={problem.reason ? true : undefined}
              aria-describedby={describedBy(reasonId, problem.reason)}
              onInput={(event) => setReason(event.currentTarget.value)}
            />
            <button type="submit">Freeze</button>
            <FieldError id={reasonId} message={problem.reason} />
          </form>
        )
      ) : null}
    </>
  );
}
