import { useState } from 'preact/hooks';

import { DEPLOY } from '../api/documents';
import type { Build, Environment, Integration } from '../api/types';
import { isProblem, showProblem, type Problem } from '../errors';
import { when } from '../format';
import { useSession } from '../hooks';
import { describedBy, Dialog, ErrorSummary, FieldError } from './ui';

type Result = { __typename: 'Deployment' | 'Promotion'; id: string } | Problem;

/** Deploys a build of the integration into the first environment of the pipeline. */
export function DeployDialog(props: {
  integration: Integration;
  environment: Environment;
  builds: Build[];
  onClose: (changed: boolean) => void;
}): preact.JSX.Element {
  const { api } = useSession();
  const [buildId, setBuildId] = useState(props.builds[0]?.id ?? '');
  const [problem, setProblem] = useState<{ summary: string; build?: string | undefined }>({ summary: '' });
  const [busy, setBusy] = useState(false);

  const deploy = async (): Promise<void> => {
    setBusy(true);
    setProblem({ summary: '' });
    try {
      const data = await api.request<{ deploy: Result }>(DEPLOY, {
        input: { integrationId: props.integration.id, environmentId: props.environment.id, buildId },
      });
      if (isProblem(data.deploy)) {
        const shown = showProblem(data.deploy);
        setProblem({ summary: shown.summary, build: shown.fields.buildId });
      } else {
        props.onClose(true);
      }
    } catch (error) {
      setProblem({ summary: error instanceof Error ? error.message : String(error) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Deploy ${props.integration.name} to ${props.environment.name}`} onClose={() => props.onClose(false)}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void deploy();
        }}
      >
        {props.builds.length === 0 ? (
          <p>No builds yet: register one with <code>createBuild</code> or <code>promenade build</code>.</p>
        ) : (
          <div class="field">
            <label for="deploy-build">Build</label>
            <select
              id="deploy-build"
              value={buildId}
              aria-describedby={describedBy('deploy-build', problem.build)}
              onChange={(event) => setBuildId(event.currentTarget.value)}
            >
              {props.builds.map((build) => (
                <option key={build.id} value={build.id}>
                  {build.version}
                  {build.commit ? ` (${build.commit.slice(0, 12)})` : ''} · {when(build.createdAt)}
                </option>
              ))}
            </select>
            <FieldError id="deploy-build" message={problem.build} />
          </div>
        )}
        <ErrorSummary message={problem.summary} />
        <div class="dialog-actions">
          <button type="button" onClick={() => props.onClose(false)}>
            Cancel
          </button>
          <button type="submit" class="button-primary" disabled={busy || !buildId}>
            {busy ? 'Deploying…' : 'Deploy'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
