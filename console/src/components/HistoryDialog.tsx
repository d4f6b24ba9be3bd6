import { useState } from 'preact/hooks';

import { HISTORY, ROLLBACK } from '../api/documents';
import type { Deployment, DeploymentRevision, Environment } from '../api/types';
import { isProblem, showProblem, type Problem } from '../errors';
import { when } from '../format';
import { useQuery, useSession } from '../hooks';
import { Dialog, ErrorSummary, LoadError, Loading } from './ui';

interface Data {
  deployment: { id: string; revision: number; history: { edges: { node: DeploymentRevision }[] } } | null;
}

type Result = { __typename: 'Deployment' | 'Promotion'; id: string } | Problem;

const CAUSE: Record<string, string> = {
  DEPLOY: 'Deployed',
  PROMOTION: 'Promoted',
  CONFIG_CHANGE: 'Configuration changed',
  RESTART: 'Restarted',
  ROLLBACK: 'Rolled back',
};

/** The deployment's revisions, newest first; roll back to any earlier one. */
export function HistoryDialog(props: {
  environment: Environment;
  deployment: Deployment;
  writer: boolean;
  onClose: (changed: boolean) => void;
}): preact.JSX.Element {
  const { api } = useSession();
  const { data, error, reload } = useQuery<Data>(HISTORY, { id: props.deployment.id });
  const [problem, setProblem] = useState<string | undefined>();
  const [busy, setBusy] = useState<number | null>(null);

  const rollback = async (revision: number): Promise<void> => {
    setBusy(revision);
    setProblem(undefined);
    try {
      const result = await api.request<{ rollback: Result }>(ROLLBACK, {
        input: { deploymentId: props.deployment.id, revision },
      });
      if (isProblem(result.rollback)) setProblem(showProblem(result.rollback).summary);
      else props.onClose(true);
    } catch (failure) {
      setProblem(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(null);
    }
  };

  const revisions = data?.deployment?.history.edges.map((edge) => edge.node) ?? [];
  const current = data?.deployment?.revision ?? props.deployment.revision;
  return (
    <Dialog title={`History in ${props.environment.name}`} onClose={() => props.onClose(false)} wide>
      {error ? <LoadError error={error} retry={reload} /> : null}
      {!data && !error ? <Loading what="the history" /> : null}
      <ErrorSummary message={problem} />
      {data ? (
        <div class="table-scroll">
          <table>
            <caption class="visually-hidden">Revisions in {props.environment.name}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Revision</th>
                <th scope="col">Build</th>
                <th scope="col">What</th>
                <th scope="col">By</th>
                <th scope="col">When</th>
                <th scope="col">
                  <span class="visually-hidden">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {revisions.map((revision) => (
                <tr key={revision.revision}>
                  <th scope="row">{revision.revision}</th>
                  <td>{revision.build.version}</td>
                  <td>
                    {CAUSE[revision.cause] ?? revision.cause}
                    {revision.reason ? `: ${revision.reason}` : ''}
                  </td>
                  <td>{revision.actor?.name ?? '—'}</td>
                  <td>{when(revision.createdAt)}</td>
                  <td>
                    {revision.revision === current ? (
                      <span>Current</span>
                    ) : props.writer ? (
                      <button type="button" disabled={busy !== null} onClick={() => void rollback(revision.revision)}>
                        {busy === revision.revision ? 'Rolling back…' : `Roll back to ${revision.revision}`}
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Dialog>
  );
}
