// The organization's audit log, newest first, fifty at a time (visible to admins).
import { useState } from 'preact/hooks';

import { AUDIT_LOG } from '../api/documents';
import type { AuditEvent, PageInfo } from '../api/types';
import { detailText } from '../format';
import { useQuery, useSession } from '../hooks';
import { LoadError, Loading } from './ui';

interface Data {
  organization: { id: string; auditLog: { edges: { node: AuditEvent }[]; pageInfo: PageInfo } } | null;
}

export function AuditPage(props: { org: string }): preact.JSX.Element {
  const { api } = useSession();
  const { data, error, reload } = useQuery<Data>(AUDIT_LOG, { slug: props.org, after: null });
  const [more, setMore] = useState<{ events: AuditEvent[]; pageInfo: PageInfo | null }>({ events: [], pageInfo: null });
  const [moreError, setMoreError] = useState<Error | undefined>();
  if (error) return <LoadError error={error} retry={reload} />;
  if (!data) return <Loading what="the audit log" />;
  const log = data.organization?.auditLog;
  const events = [...(log?.edges.map((edge) => edge.node) ?? []), ...more.events];
  const pageInfo = more.pageInfo ?? log?.pageInfo;

  const loadMore = async (): Promise<void> => {
    try {
      const next = await api.request<Data>(AUDIT_LOG, { slug: props.org, after: pageInfo?.endCursor ?? null });
      const page = next.organization?.auditLog;
      if (page) setMore({ events: [...more.events, ...page.edges.map((edge) => edge.node)], pageInfo: page.pageInfo });
    } catch (failure) {
      setMoreError(failure instanceof Error ? failure : new Error(String(failure)));
    }
  };

  return (
    <section>
      <h1>Audit log</h1>
      <div class="table-scroll">
        <table class="audit">
          <caption class="visually-hidden">What was done in this organization, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Subject</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {events.map((event) => (
              <tr key={event.id}>
                <td>
                  <time dateTime={event.at}>{new Date(event.at).toLocaleString()}</time>
                </td>
                <td>{event.actor?.email ?? 'Promenade'}</td>
                <td>
                  <code>{event.action}</code>
                </td>
                <td>
                  <code>{event.subjectId}</code>
                </td>
                <td class="detail">{detailText(event.detail)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {moreError ? <LoadError error={moreError} /> : null}
      {pageInfo?.hasNextPage ? (
        <button type="button" onClick={() => void loadMore()}>
          Load older entries
        </button>
      ) : null}
    </section>
  );
}
