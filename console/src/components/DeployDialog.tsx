import { useState } from 'preact/hooks';

import { DEPLOY } from '../api/documents';
import type { Build, Environment, Integration } from '../api/types';
import { entryField, isProblem, showProblem, type Problem, type Shown } from '../errors';
import { when } from '../format';
import { useSession } from '../hooks';
import { overrideEntries } from '../overrides';
import { describedBy, Dialog, ErrorSummary, FieldError } from './ui';
import { ValuesFieldset } from './ValuesFieldset';

type Result = { __typename: 'Deployment' | 'Promotion'; id: string } | Problem;

/** Deploys a build of the integration into the first environment of the pipeline. */
export function DeployDialog(props: {
  integration: Integration;
  environment: Environment;
  builds: Build[];
  /** Whether it runs there already (its values stay unless typed anew). */
  deployed: boolean;
  /** The required keys the environment has no value for. */
  missing: string[];
  onClose: (changed: boolean) => void;
}): preact.JSX.Element {
  const { api } = useSession();
  const [buildId, setBuildId] = useState(props.builds[0]?.id ?? '');
  const [values, setValues] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<Shown>({ summary: '', fields: {} });
  const [busy, setBusy] = useState(false);

  const deploy = async (): Promise<void> => {
    setBusy(true);
    setProblem({ summary: '', fields: {} });
    const configuration = overrideEntries(values);
    try {
      const data = await api.request<{ deploy: Result }>(DEPLOY, {
        input: { integrationId: props.integration.id, environmentId: props.environment.id, buildId, configuration },
      });
      if (isProblem(data.deploy)) {
        const rows = configuration.map((entry) => entry.key);
        setProblem(showProblem(data.deploy, entryField('configuration', rows, (key) => key)));
      } else {
        setValues({});
        props.onClose(true);
      }
    } catch (error) {
      setProblem({ summary: error instanceof Error ? error.message : String(error), fields: {} });
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
              aria-describedby={describedBy('deploy-build', problem.fields.buildId)}
              onChange={(event) => setBuildId(event.currentTarget.value)}
            >
              {props.builds.map((build) => (
                <option key={build.id} value={build.id}>
                  {build.version}
                  {build.commit ? ` (${build.commit.slice(0, 12)})` : ''} · {when(build.createdAt)}
                </option>
              ))}
            </select>
            <FieldError id="deploy-build" message={problem.fields.buildId} />
          </div>
        )}
        <ValuesFieldset
          idPrefix="deploy"
          legend={`Values for ${props.environment.name}`}
          hint={
            props.deployed
              ? `Leave a field empty to keep ${props.environment.name}'s own value.`
              : 'Required values must be set before the first deploy. Secret values are never shown.'
          }
          schema={props.integration.configSchema}
          values={values}
          onValues={setValues}
          missing={new Set(props.missing)}
          errors={problem.fields}
        />
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
