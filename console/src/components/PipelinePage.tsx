// A project's pipeline: one card per environment, in the pipeline's order, for the chosen
// integration; each card follows the integration's deployment events live.
import { useEffect, useRef, useState } from 'preact/hooks';

import { DEPLOYMENT_EVENTS, INTEGRATION_DEPLOYMENTS, PROJECT } from '../api/documents';
import type { Build, Deployment, DeploymentEvent, Environment, Integration, OpenRequest, ProjectDetail } from '../api/types';
import { canChange, DEPLOYMENT_STATUS, deploymentIn, nextEnvironment, pollDelay, safeLink, when } from '../format';
import { useQuery, useRole, useSession, useSubscription } from '../hooks';
import { formatRoute } from '../route';
import { ConfigureDialog } from './ConfigureDialog';
import { DeployDialog } from './DeployDialog';
import { HistoryDialog } from './HistoryDialog';
import { OperationButton } from './OperationButton';
import { PromoteDialog } from './PromoteDialog';
import { DeploymentBadge, LoadError, Loading, PromotionBadge } from './ui';

const REQUEST_KIND: Record<string, string> = {
  PROMOTION: 'Promotion',
  DEPLOY: 'Deploy',
  CONFIGURATION: 'Configuration change',
  RESTART: 'Restart',
  ROLLBACK: 'Rollback',
  RELEASE: 'Release',
};

interface Data {
  project: ProjectDetail | null;
}

type Opened =
  | { dialog: 'promote'; source: Environment; target: Environment }
  | { dialog: 'configure'; environment: Environment }
  | { dialog: 'deploy'; environment: Environment }
  | { dialog: 'history'; environment: Environment; deployment: Deployment };

export function PipelinePage(props: { org: string; projectId: string; integrationId: string | undefined }): preact.JSX.Element {
  const { data, error, reload } = useQuery<Data>(PROJECT, { id: props.projectId });
  if (error) return <LoadError error={error} retry={reload} />;
  if (!data) return <Loading what="the pipeline" />;
  const project = data.project;
  if (!project) return <p role="alert">This project does not exist, or you may not see it.</p>;
  if (project.organization.slug !== props.org) {
    // A link that names another organization than the project's: the viewer's role (what the
    // page offers) is the one in the project's organization, so go there.
    return (
      <Redirect
        to={formatRoute({ page: 'project', org: project.organization.slug, projectId: project.id })}
      />
    );
  }
  const integrations = project.integrations.edges.map((edge) => edge.node);
  const chosen = integrations.find((i) => i.id === props.integrationId) ?? integrations[0];
  return (
    <section>
      <h1>{project.name}</h1>
      <p class="subtitle">
        Pipeline <strong>{project.pipeline.name}</strong>:{' '}
        {project.pipeline.environments.map((environment) => environment.name).join(' → ')}
      </p>
      {integrations.length > 1 ? (
        <nav aria-label="Integrations" class="tabs">
          {integrations.map((integration) => (
            <a
              key={integration.id}
              href={formatRoute({ page: 'project', org: props.org, projectId: project.id, integrationId: integration.id })}
              aria-current={integration.id === chosen?.id ? 'page' : undefined}
            >
              {integration.name}
            </a>
          ))}
        </nav>
      ) : null}
      {chosen ? (
        <IntegrationPipeline key={chosen.id} org={props.org} integration={chosen} pipeline={project.pipeline.environments} />
      ) : (
        <p>This project has no integration yet.</p>
      )}
    </section>
  );
}

function Redirect(props: { to: string }): preact.JSX.Element {
  useEffect(() => window.location.replace(props.to), [props.to]);
  return <Loading what="the project's organization" />;
}

function IntegrationPipeline(props: { org: string; integration: Integration; pipeline: Environment[] }): preact.JSX.Element {
  const { api } = useSession();
  const role = useRole(props.org);
  const [deployments, setDeployments] = useState(props.integration.deployments);
  const [builds, setBuilds] = useState<Build[]>(props.integration.builds.edges.map((edge) => edge.node));
  const [requests, setRequests] = useState<OpenRequest[]>(props.integration.promotions.edges.map((edge) => edge.node));
  const [lastEvent, setLastEvent] = useState<Record<string, DeploymentEvent>>({});
  const [announcement, setAnnouncement] = useState('');
  const [opened, setOpened] = useState<Opened | null>(null);
  const [live, setLive] = useState<'connecting' | 'live' | 'lost'>('connecting');

  // Events come in bursts and each one asks again: only the answer to the latest question is
  // shown, so that an earlier, slower answer cannot put an older state back on the cards.
  const asked = useRef(0);
  const refresh = async (): Promise<void> => {
    const question = ++asked.current;
    const data = await api.request<{ integration: Pick<Integration, 'deployments' | 'builds' | 'promotions'> | null }>(
      INTEGRATION_DEPLOYMENTS,
      { id: props.integration.id },
    );
    if (question !== asked.current) return;
    if (data.integration) {
      setDeployments(data.integration.deployments);
      setBuilds(data.integration.builds.edges.map((edge) => edge.node));
      setRequests(data.integration.promotions.edges.map((edge) => edge.node));
    }
  };

  useSubscription<{ deploymentEvents: DeploymentEvent }>(
    DEPLOYMENT_EVENTS,
    { integrationId: props.integration.id },
    ({ deploymentEvents: event }) => {
      setLive('live');
      setLastEvent((previous) => ({ ...previous, [event.environmentId]: event }));
      const environment = props.pipeline.find((e) => e.id === event.environmentId);
      setAnnouncement(
        `${environment?.name ?? 'An environment'}: ${DEPLOYMENT_STATUS[event.status]}, revision ${event.revision}`,
      );
      void refresh();
    },
    () => setLive('lost'),
  );

  // The events say when to look again; a look now and then covers what they cannot: an event
  // sent before this page subscribed, and a request rejected or cancelled (which changes no
  // deployment). Soon while something is under way, seldom while a request waits.
  const delay = pollDelay(deployments, requests);
  useEffect(() => {
    if (delay === null) return undefined;
    const timer = window.setTimeout(() => void refresh(), delay);
    return () => window.clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [deployments, requests, delay]);

  const close = (changed: boolean): void => {
    setOpened(null);
    if (changed) void refresh();
  };
  const writer = canChange(role);

  return (
    <>
      <div class="pipeline-heading">
        <h2>{props.integration.name}</h2>
        <span class={`live live-${live}`}>{live === 'lost' ? 'Live updates lost: reload the page' : 'Live'}</span>
      </div>
      <p class="visually-hidden" aria-live="polite">
        {announcement}
      </p>
      <ol class="pipeline">
        {props.pipeline.map((environment, index) => {
          const deployment = deploymentIn(deployments, environment.id);
          const next = nextEnvironment(props.pipeline, environment.id);
          return (
            <li key={environment.id} class="card" aria-labelledby={`env-${environment.id}`} data-environment={environment.name}>
              <EnvironmentCard
                environment={environment}
                deployment={deployment}
                event={lastEvent[environment.id]}
                requests={requests.filter((request) => request.targetEnvironment.id === environment.id)}
                writer={writer}
                first={index === 0}
                next={next}
                onOpen={setOpened}
                onDone={() => void refresh()}
              />
            </li>
          );
        })}
      </ol>
      {opened?.dialog === 'promote' ? (
        <PromoteDialog
          integration={props.integration}
          source={opened.source}
          target={opened.target}
          onClose={() => close(true)}
        />
      ) : null}
      {opened?.dialog === 'configure' ? (
        <ConfigureDialog
          integration={props.integration}
          environment={opened.environment}
          deployment={deploymentIn(deployments, opened.environment.id)}
          onClose={close}
        />
      ) : null}
      {opened?.dialog === 'deploy' ? (
        <DeployDialog
          integration={props.integration}
          environment={opened.environment}
          builds={builds}
          {...deployTarget(props.integration, deploymentIn(deployments, opened.environment.id))}
          onClose={close}
        />
      ) : null}
      {opened?.dialog === 'history' ? (
        <HistoryDialog environment={opened.environment} deployment={opened.deployment} writer={writer} onClose={close} />
      ) : null}
    </>
  );
}

function EndpointLink(props: { url: string | null }): preact.JSX.Element {
  const href = safeLink(props.url);
  if (href === null) return <>{props.url ?? '—'}</>;
  return (
    <a href={href} target="_blank" rel="noopener noreferrer">
      {props.url}
    </a>
  );
}

/** What the deploy dialog asks for: every required key without a default, on a first deploy. */
function deployTarget(integration: Integration, deployment: Deployment | undefined): { deployed: boolean; missing: string[] } {
  if (deployment && deployment.status !== 'NOT_DEPLOYED') {
    return { deployed: true, missing: deployment.missingConfiguration };
  }
  const have = new Set(deployment?.configuration.map((value) => value.key) ?? []);
  return {
    deployed: false,
    missing: integration.configSchema
      .filter((key) => key.required && key.defaultValue === null && !have.has(key.key))
      .map((key) => key.key),
  };
}

function EnvironmentCard(props: {
  environment: Environment;
  deployment: Deployment | undefined;
  event: DeploymentEvent | undefined;
  requests: OpenRequest[];
  writer: boolean;
  first: boolean;
  next: Environment | undefined;
  onOpen: (opened: Opened) => void;
  onDone: () => void;
}): preact.JSX.Element {
  const { environment, deployment, next } = props;
  const deployed = deployment !== undefined && deployment.status !== 'NOT_DEPLOYED';
  return (
    <>
      <header class="card-header">
        <h3 id={`env-${environment.id}`}>{environment.name}</h3>
        <span class="card-status">
          <DeploymentBadge status={deployment?.status ?? 'NOT_DEPLOYED'} />
        </span>
      </header>
      <p class="card-flags">
        {environment.approvalPolicy ? <span class="flag">Protected</span> : null}
        {environment.frozen ? (
          <span class="flag flag-frozen" title={environment.freezeReason ?? undefined}>
            Frozen{environment.freezeReason ? `: ${environment.freezeReason}` : ''}
          </span>
        ) : null}
      </p>
      {deployed ? (
        <dl class="facts">
          <dt>Build</dt>
          <dd class="build">{deployment.build ? deployment.build.version : '—'}</dd>
          <dt>Revision</dt>
          <dd class="revision">{deployment.revision}</dd>
          <dt>Endpoint</dt>
          <dd>
            <EndpointLink url={deployment.endpointUrl} />
          </dd>
          <dt>Updated</dt>
          <dd>{when(deployment.updatedAt)}</dd>
        </dl>
      ) : (
        <p class="empty">Not deployed here yet.</p>
      )}
      {deployment?.restartRequired ? (
        <p class="notice">Configuration changed: restart to apply it.</p>
      ) : null}
      {deployment && deployment.missingConfiguration.length > 0 ? (
        <p class="notice notice-warning missing">
          Missing configuration: <strong>{deployment.missingConfiguration.join(', ')}</strong>
        </p>
      ) : null}
      {deployment?.lastError ? <p class="notice notice-error">Last error: {deployment.lastError}</p> : null}
      {props.requests.length > 0 ? (
        <ul class="requests" aria-label={`Open requests for ${environment.name}`}>
          {props.requests.map((request) => (
            <li key={request.id}>
              {REQUEST_KIND[request.kind] ?? request.kind} of {request.build.version}:{' '}
              <PromotionBadge status={request.status} />
            </li>
          ))}
        </ul>
      ) : null}
      {props.event?.detail ? <p class="event-detail">{props.event.detail}</p> : null}
      {props.writer ? (
        <div class="actions">
          {props.first ? (
            <button type="button" onClick={() => props.onOpen({ dialog: 'deploy', environment })}>
              Deploy a build
            </button>
          ) : null}
          <button type="button" onClick={() => props.onOpen({ dialog: 'configure', environment })}>
            Configure
          </button>
          {deployed && deployment ? (
            <>
              <OperationButton operation="restart" deployment={deployment} environment={environment} onDone={props.onDone} />
              {deployment.status === 'SUSPENDED' ? (
                <OperationButton operation="resume" deployment={deployment} environment={environment} onDone={props.onDone} />
              ) : (
                <OperationButton operation="suspend" deployment={deployment} environment={environment} onDone={props.onDone} />
              )}
              <button type="button" onClick={() => props.onOpen({ dialog: 'history', environment, deployment })}>
                History
              </button>
            </>
          ) : null}
          {deployed && next ? (
            <button
              type="button"
              class="button-primary"
              onClick={() => props.onOpen({ dialog: 'promote', source: environment, target: next })}
            >
              Promote to {next.name}
            </button>
          ) : null}
        </div>
      ) : null}
    </>
  );
}
