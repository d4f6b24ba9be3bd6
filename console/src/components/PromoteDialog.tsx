// Promote: the plan first (blockers, missing keys, the configuration diff with secrets
// masked), then the overrides, then the promotion followed live to its end.
import { useEffect, useState } from 'preact/hooks';

import { PROMOTE, PROMOTION_PLAN, PROMOTION_STATUS } from '../api/documents';
import type { Environment, Integration, Promotion, PromotionEvent, PromotionPlan } from '../api/types';
import { describeBlockers, entryField, isProblem, showProblem, type Problem, type Shown } from '../errors';
import { isFinished, PROMOTION_STATUS as STATUS_TEXT, when } from '../format';
import { useSession, useSubscription } from '../hooks';
import { overrideEntries } from '../overrides';
import { ChangesTable } from './ChangesTable';
import { describedBy, Dialog, ErrorSummary, FieldError, PromotionBadge } from './ui';
import { ValuesFieldset } from './ValuesFieldset';

export function PromoteDialog(props: {
  integration: Integration;
  source: Environment;
  target: Environment;
  onClose: () => void;
}): preact.JSX.Element {
  const [promotion, setPromotion] = useState<Promotion | null>(null);
  return (
    <Dialog title={`Promote ${props.integration.name} to ${props.target.name}`} onClose={props.onClose} wide>
      {promotion ? (
        <FollowPromotion promotion={promotion} onClose={props.onClose} />
      ) : (
        <PlanAndPromote {...props} onPromoted={setPromotion} />
      )}
    </Dialog>
  );
}

function PlanAndPromote(props: {
  integration: Integration;
  source: Environment;
  target: Environment;
  onClose: () => void;
  onPromoted: (promotion: Promotion) => void;
}): preact.JSX.Element {
  const { api } = useSession();
  const schema = props.integration.configSchema;
  const [values, setValues] = useState<Record<string, string>>({});
  const [copySource, setCopySource] = useState(false);
  const [message, setMessage] = useState('');
  const [plan, setPlan] = useState<PromotionPlan | null>(null);
  const [planError, setPlanError] = useState<string | undefined>();
  const [shown, setShown] = useState<Shown>({ summary: '', fields: {} });
  const [busy, setBusy] = useState(false);

  const input = (): Record<string, unknown> => ({
    integrationId: props.integration.id,
    sourceEnvironmentId: props.source.id,
    targetEnvironmentId: props.target.id,
    overrides: overrideEntries(values),
    copySourceConfiguration: copySource,
    ...(message.trim() ? { message: message.trim() } : {}),
  });

  const checkPlan = async (): Promise<void> => {
    setPlanError(undefined);
    try {
      const data = await api.request<{ promotionPlan: PromotionPlan | null }>(PROMOTION_PLAN, { input: input() });
      setPlan(data.promotionPlan);
      if (!data.promotionPlan) setPlanError('The integration or an environment no longer exists.');
    } catch (error) {
      setPlanError(error instanceof Error ? error.message : String(error));
    }
  };
  useEffect(() => {
    void checkPlan();
    // The first plan, without overrides; "Check again" asks for the next ones.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const promote = async (): Promise<void> => {
    setBusy(true);
    setShown({ summary: '', fields: {} });
    const entries = overrideEntries(values);
    try {
      const data = await api.request<{ promote: Promotion | Problem }>(PROMOTE, { input: input() });
      const result = data.promote;
      if (isProblem(result)) {
        const rows = entries.map((entry) => entry.key);
        setShown(showProblem(result, entryField('overrides', rows, (key) => key)));
        if (result.__typename === 'PromotionBlockedError' || result.__typename === 'MissingConfigurationError') {
          void checkPlan();
        }
      } else {
        // Secrets typed here are not kept once they are sent.
        setValues({});
        props.onPromoted(result);
      }
    } catch (error) {
      setShown({ summary: error instanceof Error ? error.message : String(error), fields: {} });
    } finally {
      setBusy(false);
    }
  };

  const missing = new Set(plan?.missingConfiguration ?? []);
  // Missing values are not a blocker of this form: the fields below are where they are set.
  const blockers = (plan?.blockers ?? []).filter((blocker) => blocker !== 'MISSING_CONFIGURATION');
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        void promote();
      }}
    >
      <section aria-labelledby="plan-heading" class="plan">
        <h3 id="plan-heading">Plan</h3>
        {planError ? <ErrorSummary message={planError} /> : null}
        {plan === null && !planError ? <p role="status">Checking the plan…</p> : null}
        {plan ? (
          <>
            <p>
              Build <strong class="plan-build">{plan.build?.version ?? '—'}</strong> moves from {props.source.name} to{' '}
              {props.target.name}, unchanged.
              {plan.requiresApproval ? ' It waits for approval before it starts.' : ''}
            </p>
            {blockers.length > 0 ? (
              <div class="notice notice-error blockers">
                <p>It cannot start yet:</p>
                <ul>
                  {describeBlockers(blockers).map((text) => (
                    <li key={text}>{text}</li>
                  ))}
                </ul>
              </div>
            ) : plan.missingConfiguration.length === 0 ? (
              <p class="notice notice-ok">Nothing blocks it.</p>
            ) : null}
            {plan.missingConfiguration.length > 0 ? (
              <p class="notice notice-warning plan-missing">
                {props.target.name} is missing: <strong>{plan.missingConfiguration.join(', ')}</strong>. Set them below.
              </p>
            ) : null}
            {plan.soakedAt ? <p>Soaked since {when(plan.soakedAt)}.</p> : null}
            <h4>Configuration in {props.target.name}</h4>
            <ChangesTable changes={plan.configurationChanges} caption={`How ${props.target.name}'s configuration changes`} />
          </>
        ) : null}
      </section>

      <ValuesFieldset
        idPrefix="override"
        legend={`Values for ${props.target.name}`}
        hint={`Leave a field empty to keep ${props.target.name}'s own value. Secret values are never shown.`}
        schema={schema}
        values={values}
        onValues={setValues}
        missing={missing}
        errors={shown.fields}
      />
      <fieldset>
        <legend>Request</legend>
        <div class="field field-check">
          <input
            id="copy-source"
            type="checkbox"
            checked={copySource}
            onChange={(event) => setCopySource(event.currentTarget.checked)}
          />
          <label for="copy-source">Copy {props.source.name}'s values where {props.target.name} has none</label>
        </div>
        <div class="field">
          <label for="promotion-message">Message (optional)</label>
          <textarea
            id="promotion-message"
            rows={2}
            value={message}
            aria-invalid={shown.fields.message ? true : undefined}
            aria-describedby={describedBy('promotion-message', shown.fields.message)}
            onInput={(event) => setMessage(event.currentTarget.value)}
          />
          <FieldError id="promotion-message" message={shown.fields.message} />
        </div>
      </fieldset>
      <ErrorSummary message={shown.summary} />
      <div class="dialog-actions">
        <button type="button" onClick={() => void checkPlan()}>
          Check the plan again
        </button>
        <button type="submit" class="button-primary" disabled={busy}>
          {busy ? 'Promoting…' : `Promote to ${props.target.name}`}
        </button>
      </div>
    </form>
  );
}

function FollowPromotion(props: { promotion: Promotion; onClose: () => void }): preact.JSX.Element {
  const [events, setEvents] = useState<PromotionEvent[]>([]);
  const [status, setStatus] = useState(props.promotion.status);
  const [lost, setLost] = useState<string | undefined>();
  useSubscription<{ promotionStatus: PromotionEvent }>(
    PROMOTION_STATUS,
    isFinished(props.promotion.status) ? null : { id: props.promotion.id },
    ({ promotionStatus: event }) => {
      setEvents((previous) => [...previous, event]);
      setStatus(event.status);
    },
    (error) => setLost(error.message),
  );
  const finished = isFinished(status);
  return (
    <div class="follow">
      <p aria-live="polite" class="follow-status">
        {props.promotion.build.version} to {props.promotion.targetEnvironment.name}: <PromotionBadge status={status} />
      </p>
      {status === 'PENDING_APPROVAL' ? (
        <p>It starts once approved: reviewers see it under Approvals. You may close this dialog.</p>
      ) : null}
      <ol class="events" aria-label="Progress">
        {events.map((event, index) => (
          <li key={index}>
            <span class="event-status">{STATUS_TEXT[event.status]}</span>
            {event.detail ? <span class="event-detail"> — {event.detail}</span> : null}
          </li>
        ))}
      </ol>
      <ErrorSummary message={lost} />
      <div class="dialog-actions">
        <button type="button" class={finished ? 'button-primary' : ''} onClick={props.onClose}>
          {finished ? 'Done' : 'Close'}
        </button>
      </div>
    </div>
  );
}
