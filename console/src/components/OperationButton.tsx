// Restart, suspend or resume a deployment: one button, and its error beside it.
import { useState } from 'preact/hooks';

import { RESTART, RESUME, SUSPEND } from '../api/documents';
import type { Deployment, Environment } from '../api/types';
import { isProblem, showProblem, type Problem } from '../errors';
import { useSession } from '../hooks';

const OPERATIONS = {
  restart: { document: RESTART, field: 'restartDeployment', label: 'Restart' },
  suspend: { document: SUSPEND, field: 'suspendDeployment', label: 'Suspend' },
  resume: { document: RESUME, field: 'resumeDeployment', label: 'Resume' },
} as const;

type Result = { __typename: 'Deployment' | 'Promotion'; id: string } | Problem;

export function OperationButton(props: {
  operation: keyof typeof OPERATIONS;
  deployment: Deployment;
  environment: Environment;
  onDone: () => void;
}): preact.JSX.Element {
  const { api } = useSession();
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | undefined>();
  const { document, field, label } = OPERATIONS[props.operation];

  const run = async (): Promise<void> => {
    setBusy(true);
    setProblem(undefined);
    try {
      const data = await api.request<Record<string, Result>>(document, { id: props.deployment.id });
      const result = data[field];
      if (result && isProblem(result)) setProblem(showProblem(result).summary);
      else props.onDone();
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <button
        type="button"
        disabled={busy}
        aria-label={`${label} in ${props.environment.name}`}
        onClick={() => void run()}
      >
        {busy ? `${label}…` : label}
      </button>
      {problem ? (
        <p class="field-error" role="alert">
          {problem}
        </p>
      ) : null}
    </>
  );
}
