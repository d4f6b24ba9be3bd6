// Small pieces every page uses: a modal dialog, an error summary, a field's error, a status.
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';

import type { DeploymentStatus, PromotionStatus } from '../api/types';
import { DEPLOYMENT_STATUS, PROMOTION_STATUS } from '../format';

/** A native modal <dialog>: focus moves into it, Escape closes it, the page behind is inert. */
export function Dialog(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  wide?: boolean;
}): preact.JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? 'dialog dialog-wide' : 'dialog'}
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault();
        props.onClose();
      }}
    >
      <header class="dialog-header">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="button-quiet" onClick={props.onClose} aria-label="Close the dialog">
          ✕
        </button>
      </header>
      {props.children}
    </dialog>
  );
}

/** A form's error, read out by screen readers as soon as it appears. */
export function ErrorSummary(props: { message: string | undefined }): preact.JSX.Element | null {
  if (!props.message) return null;
  return (
    <p class="error-summary" role="alert">
      {props.message}
    </p>
  );
}

/** An input's error, linked to it through aria-describedby (id ``<inputId>-error``). */
export function FieldError(props: { id: string; message: string | undefined }): preact.JSX.Element | null {
  if (!props.message) return null;
  return (
    <p class="field-error" id={`${props.id}-error`}>
      {props.message}
    </p>
  );
}

export function describedBy(id: string, message: string | undefined): string | undefined {
  return message ? `${id}-error` : undefined;
}

export function DeploymentBadge(props: { status: DeploymentStatus }): preact.JSX.Element {
  return <span class={`badge badge-${props.status.toLowerCase()}`}>{DEPLOYMENT_STATUS[props.status]}</span>;
}

export function PromotionBadge(props: { status: PromotionStatus }): preact.JSX.Element {
  return <span class={`badge badge-${props.status.toLowerCase()}`}>{PROMOTION_STATUS[props.status]}</span>;
}

export function Loading(props: { what: string }): preact.JSX.Element {
  return (
    <p class="loading" role="status">
      Loading {props.what}…
    </p>
  );
}

export function LoadError(props: { error: Error; retry?: () => void }): preact.JSX.Element {
  return (
    <div class="error-summary" role="alert">
      <p>{props.error.message}</p>
      {props.retry ? (
        <button type="button" onClick={props.retry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

/**
 * A configuration value's input: a password field for a secret (never filled in from the API,
 * which sends no secret values), a text field otherwise.
 */
export function ValueInput(props: {
  id: string;
  name: string;
  secret: boolean;
  value: string;
  error: string | undefined;
  placeholder?: string | undefined;
  disabled?: boolean;
  onValue: (value: string) => void;
}): preact.JSX.Element {
  const common = {
    id: props.id,
    name: props.name,
    value: props.value,
    disabled: props.disabled ?? false,
    'aria-invalid': props.error ? true : undefined,
    'aria-describedby': describedBy(props.id, props.error),
    onInput: (event: { currentTarget: HTMLInputElement }) => props.onValue(event.currentTarget.value),
  };
  return props.secret ? (
    <input {...common} type="password" autocomplete="new-password" />
  ) : (
    <input {...common} type="text" autocomplete="off" placeholder={props.placeholder} spellcheck={false} />
  );
}
