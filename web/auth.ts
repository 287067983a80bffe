/** The sign-in / sign-up form. */
import { signedIn } from './app';
import { $, h } from './dom';
import { Session } from './session';

export function showAuth(error = ''): void {
  const username = h('input', {
    name: 'username',
    placeholder: 'username',
    required: true,
    autocomplete: 'username',
  });
  const email = h('input', {
    name: 'email',
    type: 'email',
    placeholder: 'email (sign up only)',
    autocomplete: 'email',
  });
  const password = h('input', {
    name: 'password',
    type: 'password',
    placeholder: 'password',
    required: true,
    autocomplete: 'current-password',
  });
  const status = h('p', { class: 'error', attrs: { 'data-testid': 'auth-error' } }, error);
  const submit = async (signup: boolean) => {
    try {
      const s = signup
        ? await Session.signup(username.value, email.value, password.value)
        : await Session.login(username.value, password.value);
      await signedIn(s);
    } catch (e) {
      status.textContent = e instanceof Error ? e.message : String(e);
    }
  };
  const go = (signup: boolean) => (ev: Event) => {
    ev.preventDefault();
    void submit(signup);
  };
  $('#app').replaceChildren(
    h(
      'form',
      { class: 'auth', attrs: { 'data-testid': 'auth' }, on: { submit: go(false) } },
      h('h1', {}, 'Parlor'),
      username,
      email,
      password,
      h(
        'div',
        {},
        h('button', { type: 'submit' }, 'Log in'),
        ' ',
        h(
          'button',
          { type: 'button', attrs: { 'data-testid': 'signup' }, on: { click: go(true) } },
          'Sign up',
        ),
      ),
      status,
    ),
  );
}
