/**
 * The page's one way to make DOM: strings always become text nodes (never HTML), so whatever a
 * user typed is shown as typed.
 */
type Child = Node | string | number | null | undefined | false;
type Props = {
  class?: string;
  attrs?: Record<string, string>;
  on?: Partial<{ [E in keyof HTMLElementEventMap]: (ev: HTMLElementEventMap[E]) => void }>;
} & Partial<
  Pick<
    HTMLInputElement,
    'type' | 'value' | 'placeholder' | 'disabled' | 'title' | 'name' | 'required' | 'autocomplete'
  >
>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  const { class: cls, attrs, on, ...rest } = props;
  if (cls) el.className = cls;
  Object.assign(el, rest);
  for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k, v);
  for (const [event, handler] of Object.entries(on ?? {}))
    el.addEventListener(event, handler as EventListener);
  el.append(...children.filter((c) => c !== null && c !== undefined && c !== false).map(String2));
  return el;
}

const String2 = (c: Child): Node | string => (c instanceof Node ? c : String(c));

export const $ = <T extends HTMLElement = HTMLElement>(
  selector: string,
  root: ParentNode = document,
) => root.querySelector<T>(selector)!;
