/**
 * A page's h1. After a navigation inside the console it takes focus (so screen readers announce
 * the new page and the keyboard starts from it); on the first page of a load focus stays at the
 * top of the document, where Tab reaches the skip link (the page after sign-in is not a first page).
 * It also names the browser tab.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

let firstPageShown = false;

/**
 * For a page without a heading of this kind (sign-in): the page after it is not the first of
 * the load, so its heading takes focus instead of leaving it on the body once the form is gone.
 */
export function notePageShown(): void {
  firstPageShown = true;
}

/**
 * `id`: for a section the heading names (`aria-labelledby`). `takesFocus: false`: the page puts the
 * keyboard elsewhere itself (the task list brought back by Back, on the task opened). Said here,
 * not done after this heading's own focus: which of two components' effects runs last is not
 * fixed (one that renders again before the browser paints runs its effects then, before its
 * children's), so the heading could take the keyboard back from where the page put it.
 */
export function PageHeading({ title, id, takesFocus = true, children }: { title: string; id?: string; takesFocus?: boolean; children?: ComponentChildren }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Kling Gateway`;
  }, [title]);
  // Once per page shown, not per title: a title that follows the form (New video → New image)
  // must not take the keyboard away from the control that changed it.
  useEffect(() => {
    if (firstPageShown && takesFocus) heading.current?.focus({ preventScroll: true });
    firstPageShown = true;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <h1 id={id} tabIndex={-1} ref={heading}>
      {children ?? title}
    </h1>
  );
}
