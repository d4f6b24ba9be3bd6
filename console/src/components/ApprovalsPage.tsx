// The viewer's pending requests, refreshed live as requests arrive or end (approvalRequests);
// each approved or rejected with a comment.
import { useState } from 'preact/hooks';

import { APPROVAL_REQUESTS, APPROVE, PENDING_APPROVALS, REJECT } from '../api/documents';
import type { Promotion } from '../api/types';
import { isProblem, showProblem, type Problem } from '../errors';
import { when } from '../format';
import { useQuery, useSession, useSubscription } from '../hooks';
import { ChangesTable } from './ChangesTable';
import { ErrorSummary, LoadError, Loading, PromotionBadge } from './ui';

interface Data {
  organization: { id: string; pendingApprovals: { edges: { node: Promotion }[] } } | null;
}

export function ApprovalsPage(props: { org: string }): preact.JSX.Element {
  const { data, error, reload } = useQuery<Data>(PENDING_APPROVALS, { slug: props.org });
  const organizationId = data?.organization?.id ?? null;
  useSubscription<{ approvalRequests: { id: string } }>(
    APPROVAL_REQUESTS,
    organizationId === null ? null : { organizationId },
    () => reload(),
  );
  if (error) return <LoadError error={error} retry={reload} />;
  if (!data) return <Loading what="approvals" />;
  const pending = data.organization?.pendingApprovals.edges.map((edge) => edge.node) ?? [];
  return (
    <section>
      <h1>Approvals</h1>
      <p class="subtitle" aria-live="polite">
        {pending.length === 0
          ? 'Nothing waits for your review.'
          : `${pending.length} request${pending.length === 1 ? '' : 's'} wait${pending.length === 1 ? 's' : ''} for your review.`}
      </p>
      <ul class="approvals">
        {pending.map((promotion) => (
          <li key={promotion.id} class="card">
            <ApprovalCard promotion={promotion} onDone={reload} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function ApprovalCard(props: { promotion: Promotion; onDone: () => void }): preact.JSX.Element {
  const { api } = useSession();
  const { promotion } = props;
  const [comment, setComment] = useState('');
  const [problem, setProblem] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const commentId = `comment-${promotion.id}`;
  const headingId = `request-${promotion.id}`;

  const decide = async (approve: boolean): Promise<void> => {
    setBusy(true);
    setProblem(undefined);
    try {
      const data = await api.request<Record<string, { __typename: 'Promotion' } | Problem>>(
        approve ? APPROVE : REJECT,
        { id: promotion.id, comment: comment.trim() || null },
      );
      const result = data[approve ? 'approvePromotion' : 'rejectPromotion'];
      if (result && isProblem(result)) setProblem(showProblem(result).summary);
      else props.onDone();
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
    } finally {
      setBusy(false);
    }
  };

  return (
    <article aria-labelledby={headingId}>
      <header class="card-header">
        <h2 id={headingId}>
          {promotion.integration.name} {promotion.build.version}: {promotion.sourceEnvironment.name} →{' '}
          {promotion.targetEnvironment.name}
        </h2>
        <PromotionBadge status={promotion.status} />
      </header>
      <p>
        Requested by {promotion.requestedBy.name} ({promotion.requestedBy.email}) {when(promotion.requestedAt)}, in{' '}
        {promotion.integration.project.name}.
      </p>
      {promotion.note ? <blockquote>{promotion.note}</blockquote> : null}
      <ul class="rules" aria-label="Approval rules">
        {promotion.approvalRules.map((progress) => (
          <li key={progress.rule.name} class={progress.met ? 'rule-met' : ''}>
            {progress.rule.name}: {progress.approvals} of {progress.rule.requiredApprovals} approval
            {progress.rule.requiredApprovals === 1 ? '' : 's'}
            {progress.approvedBy.length ? ` (${progress.approvedBy.map((user) => user.name).join(', ')})` : ''}
          </li>
        ))}
      </ul>
      <details>
        <summary>Configuration changes in {promotion.targetEnvironment.name}</summary>
        <ChangesTable changes={promotion.configurationChanges} caption="Configuration changes" />
      </details>
      <div class="field">
        <label for={commentId}>Comment (optional)</label>
        <textarea id={commentId} rows={2} value={comment} onInput={(event) => setComment(event.currentTarget.value)} />
      </div>
      <ErrorSummary message={problem} />
      <div class="actions">
        <button type="button" class="button-primary" disabled={busy} onClick={() => void decide(true)}>
          Approve
        </button>
        <button type="button" class="button-danger" disabled={busy} onClick={() => void decide(false)}>
          Reject
        </button>
      </div>
    </article>
  );
}
