/**
 * Files in messages (docs/attachments.md): the composer's tray of uploads (📎 and pasted
 * images), and a message's images (thumbnails, opened full size) and file cards (downloaded).
 * The API wants the bearer token, which `<img src>` and `<a href>` cannot send: files are
 * fetched as blobs and shown through object URLs, revoked once nothing on the page shows them.
 */
import type { AttachmentDto, MessageDto } from '../client/index';
import { h } from './dom';
import { ApiError } from './session';
import { state } from './state';
import { act } from './ui';

/** An upload in the tray: running, ready to send (`done`), or refused (`failed`). */
interface Upload {
  chip: HTMLLIElement;
  running: Promise<void>;
  abort: AbortController;
  done?: AttachmentDto;
  failed?: string;
}

/** The uploads waiting above the room's message box, sent with the next message. */
export class AttachTray {
  readonly el = h('ul', { class: 'attach-tray', attrs: { 'data-testid': 'attach-tray' } });
  private uploads: Upload[] = [];
  private taken: Upload[] = [];

  constructor(private readonly roomId: string) {
    this.el.hidden = true;
  }

  /** Uploads a file at once; its chip shows the progress, then its size or the refusal. */
  add(file: File): void {
    const progress = h('progress', { attrs: { max: '1', value: '0' } });
    const status = h('span', { class: 'meta', attrs: { 'data-testid': 'attach-status' } });
    const chip = h(
      'li',
      { class: 'chip', attrs: { 'data-testid': 'attach-chip', 'data-state': 'uploading' } },
      h('span', { class: 'chip-name' }, file.name || 'pasted image'),
      status,
      progress,
    );
    const upload: Upload = { chip, abort: new AbortController(), running: Promise.resolve() };
    chip.append(
      h(
        'button',
        {
          type: 'button',
          class: 'small link',
          title: 'Remove',
          attrs: { 'data-testid': 'attach-remove', 'aria-label': `Remove ${file.name}` },
          on: { click: () => this.remove(upload) },
        },
        '✕',
      ),
    );
    const form = new FormData();
    form.append('file', file, file.name || 'pasted-image');
    upload.running = state.session
      .upload<AttachmentDto>(
        `/rooms/${this.roomId}/attachments`,
        form,
        (f) => (progress.value = f),
        upload.abort.signal,
      )
      .then(
        (a) => {
          upload.done = a;
          status.textContent = sizeText(a.size);
        },
        (e: unknown) => {
          if (upload.abort.signal.aborted) return;
          upload.failed = uploadErrorText(e);
          status.textContent = upload.failed;
          status.setAttribute('data-testid', 'attach-error');
        },
      )
      .finally(() => {
        progress.remove();
        chip.dataset.state = upload.done ? 'ready' : 'failed';
      });
    this.uploads.push(upload);
    this.render();
  }

  /** Something to send (an upload ready or still running). */
  get pending(): boolean {
    return this.uploads.some((u) => !u.failed);
  }

  /**
   * Waits for the running uploads, then takes the ready ones out of the tray (refused ones
   * stay, with their reason, until removed). Give them back with restore() if the send fails.
   */
  async take(): Promise<AttachmentDto[]> {
    await Promise.all(this.uploads.map((u) => u.running));
    const ready = this.uploads.filter((u) => u.done);
    this.uploads = this.uploads.filter((u) => !u.done);
    this.render();
    this.taken = ready;
    return ready.map((u) => u.done!);
  }

  /** Puts back what the last take() took (the send was refused). */
  restore(): void {
    this.uploads.unshift(...this.taken);
    this.taken = [];
    this.render();
  }

  private remove(upload: Upload): void {
    upload.abort.abort(); // a finished upload is left to expire on the server (unsent)
    this.uploads = this.uploads.filter((u) => u !== upload);
    this.render();
  }

  private render(): void {
    this.el.replaceChildren(...this.uploads.map((u) => u.chip));
    this.el.hidden = !this.uploads.length;
  }
}

/** 📎 and a hidden file picker in the form; images pasted into `field` are uploaded too. */
export function attachFiles(form: HTMLFormElement, field: HTMLElement, tray: AttachTray): void {
  const picker = h('input', {
    type: 'file',
    attrs: { multiple: '', hidden: '', 'data-testid': 'attach-input' },
    on: {
      change: () => {
        for (const file of picker.files ?? []) tray.add(file);
        picker.value = '';
      },
    },
  });
  const button = h(
    'button',
    {
      type: 'button',
      class: 'attach',
      title: 'Attach a file',
      attrs: { 'data-testid': 'attach', 'aria-label': 'Attach a file' },
      on: { click: () => picker.click() },
    },
    '📎',
  );
  form.prepend(button, picker);
  field.addEventListener('paste', (ev) => {
    const files = [...(ev.clipboardData?.files ?? [])];
    if (!files.length) return; // text: pasted as usual
    ev.preventDefault();
    for (const file of files) tray.add(file);
  });
}

/** The message's files: images as thumbnails (click: full size), others as cards (download). */
export function attachmentList(m: MessageDto): HTMLElement | null {
  if (m.deletedAt || !m.attachments?.length) return null;
  return h(
    'div',
    { class: 'attachments', attrs: { 'data-testid': 'attachments' } },
    ...m.attachments.map((a) => (a.thumbnail ? imageTile(a) : fileCard(a))),
  );
}

const THUMB_PX = 240; // shown at most this big; the server's thumbnail may be larger

function imageTile(a: AttachmentDto): HTMLElement {
  const w = a.width ?? THUMB_PX;
  const ht = a.height ?? THUMB_PX;
  const scale = Math.min(1, THUMB_PX / Math.max(w, ht));
  // width and height reserve the space before the bytes arrive: no jump when they do.
  const img = h('img', {
    attrs: {
      alt: a.name,
      width: String(Math.max(1, Math.round(w * scale))),
      height: String(Math.max(1, Math.round(ht * scale))),
      'data-blob': `${a.id}.thumb`,
      'data-testid': 'attachment-image',
    },
  });
  void blobUrl(`${a.id}.thumb`, `/attachments/${a.id}/thumbnail`).then(
    (url) => (img.src = url),
    () => img.classList.add('broken'),
  );
  return h(
    'button',
    {
      type: 'button',
      class: 'attachment image',
      title: `${a.name} (${sizeText(a.size)}): open`,
      on: { click: () => openImage(a) },
    },
    img,
  );
}

function fileCard(a: AttachmentDto): HTMLElement {
  return h(
    'button',
    {
      type: 'button',
      class: 'attachment file',
      title: `Download ${a.name}`,
      attrs: { 'data-testid': 'attachment-file' },
      on: { click: () => void act(() => download(a)) },
    },
    h('span', { class: 'file-icon', attrs: { 'aria-hidden': 'true' } }, '📄'),
    h('span', { class: 'file-name' }, a.name),
    h('span', { class: 'meta' }, sizeText(a.size)),
  );
}

/** The full image over the page; a click or Escape closes it. */
function openImage(a: AttachmentDto): void {
  const img = h('img', { attrs: { alt: a.name, 'data-blob': a.id } });
  const close = () => {
    box.remove();
    document.removeEventListener('keydown', onKey);
  };
  const onKey = (ev: KeyboardEvent) => ev.key === 'Escape' && close();
  const box = h(
    'div',
    {
      class: 'lightbox',
      title: 'Close',
      attrs: { 'data-testid': 'lightbox', role: 'dialog', 'aria-label': a.name },
      on: { click: close },
    },
    img,
  );
  document.addEventListener('keydown', onKey);
  document.body.append(box);
  void act(async () => (img.src = await blobUrl(a.id, `/attachments/${a.id}`)));
}

/** Saves the file: fetched with the token, handed to the browser by a temporary link. */
async function download(a: AttachmentDto): Promise<void> {
  const url = URL.createObjectURL(await state.session.blob(`/attachments/${a.id}`));
  const link = h('a', { attrs: { href: url, download: a.name } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000); // the download has started by then
}

/**
 * Object URLs of fetched files, by key (`<id>` or `<id>.thumb`): one fetch per file however
 * often its message is redrawn. Revoked once no element with `data-blob=<key>` is on the page
 * (the message was deleted, the room closed, the image closed).
 */
const blobs = new Map<string, Promise<string>>();
let watching: MutationObserver | undefined;
let sweepQueued = false;

function blobUrl(key: string, path: string): Promise<string> {
  let url = blobs.get(key);
  if (!url) {
    url = state.session.blob(path).then((b) => URL.createObjectURL(b));
    url.catch(() => blobs.delete(key));
    blobs.set(key, url);
  }
  watching ??= watch();
  return url;
}

function watch(): MutationObserver {
  const observer = new MutationObserver((changes) => {
    if (sweepQueued || !blobs.size || !changes.some((c) => c.removedNodes.length)) return;
    sweepQueued = true;
    setTimeout(sweep, 0); // after a redraw put the new element in place of the old
  });
  observer.observe(document.body, { childList: true, subtree: true });
  return observer;
}

function sweep(): void {
  sweepQueued = false;
  for (const [key, url] of blobs) {
    if (document.querySelector(`[data-blob="${CSS.escape(key)}"]`)) continue;
    blobs.delete(key);
    void url.then(
      (u) => URL.revokeObjectURL(u),
      () => undefined,
    );
  }
}

/** The refusal as the API words it: "files of type … are not allowed", "Files may be at most …". */
function uploadErrorText(e: unknown): string {
  if (e instanceof ApiError) {
    const file = (e.details as { file?: string[] } | undefined)?.file;
    return file?.length ? file.join(', ') : e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
