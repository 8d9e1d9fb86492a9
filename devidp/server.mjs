// A development OpenID Connect provider for the support console (`make run` and the tests).
// It really speaks OIDC (discovery, authorization code flow with PKCE, signed ID tokens,
// RP-initiated logout); the sign-in page lets you pick a development user instead of asking
// for a password. Never expose it: anybody who reaches it signs in as any of these users.
//
//   node server.mjs   (settings in the environment)
//   DEV_IDP_PORT           port on 127.0.0.1 (required)
//   DEV_IDP_CLIENT_ID      the console's client id (default consent-console)
//   DEV_IDP_REDIRECT_URI   the console's callback, {CONSENT_PUBLIC_URL}/console/auth/callback
//   DEV_IDP_POST_LOGOUT_REDIRECT_URI   where the IdP sends the browser after signing out
//
// A loopback redirect URI (http://127.0.0.1/...) is registered for a native client, which
// accepts it on any port (RFC 8252, 7.3): the tests start the console on a new port each time.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const USERS = {
  support: { name: 'Sam Support', email: 'sam.support@staff.example', roles: ['support'] },
  admin: { name: 'Ada Admin', email: 'ada.admin@staff.example', roles: ['support', 'admin'] },
  nobody: { name: 'Nora Norole', email: 'nora@staff.example', roles: [] },
};

const port = Number(process.env.DEV_IDP_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('DEV_IDP_PORT: required, a port number');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.DEV_IDP_CLIENT_ID || 'consent-console';
const redirectUri = process.env.DEV_IDP_REDIRECT_URI || 'http://127.0.0.1/console/auth/callback';
const postLogoutUri = process.env.DEV_IDP_POST_LOGOUT_REDIRECT_URI
  || new URL('/console/auth/signed-out', redirectUri).href;
const loopback = ['127.0.0.1', '[::1]'].includes(new URL(redirectUri).hostname);

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const STYLE = 'body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}'
  + 'button{font:inherit;display:block;width:100%;margin:.5rem 0;padding:.6rem;cursor:pointer}';
const page = (title, body) => `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)}</title>
<style>${STYLE}</style></head><body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_name: 'consent-service support console (development)',
    application_type: loopback ? 'native' : 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [postLogoutUri],
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email'],
  claims: { openid: ['sub', 'roles'], profile: ['name'], email: ['email'] },
  // The console reads name, email and roles from the ID token, as from most providers.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: {
    enabled: true,
    logoutSource: async (ctx, form) => {
      ctx.body = page('Sign out of the development identity provider?', `${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
    },
    postLogoutSuccessSource: async (ctx) => {
      ctx.body = page('Signed out', '<p>You are signed out of the development identity provider.</p>');
    },
  } },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p>${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const user = USERS[id];
    if (!user) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...user }) };
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});

const oidc = provider.callback();

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 4096) break;
  }
  return new URLSearchParams(body);
}

// The console is a first-party client: no consent screen, what it asks for is granted.
async function grantConsent(req, res, details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (details.prompt.name === 'consent') {
    await grantConsent(req, res, details);
    return;
  }
  if (req.method === 'POST') {
    const user = (await readForm(req)).get('user');
    if (!Object.hasOwn(USERS, user)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('unknown user');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user } }, { mergeWithLastSubmission: false });
    return;
  }
  const buttons = Object.entries(USERS).map(([id, user]) => `<button type="submit" name="user" value="${escape(id)}">`
    + `${escape(user.name)} (${escape(user.roles.join(', ') || 'no console role')})</button>`).join('\n');
  const html = page('Development sign-in', `<p>Pick a user to sign in to the support console as.</p>
<form method="post" action="/interaction/${escape(uid)}">${buttons}</form>`);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY' });
  res.end(html);
}

const server = createServer((req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
  if (!match) {
    oidc(req, res);
    return;
  }
  interaction(req, res, match[1]).catch((error) => {
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`sign-in failed: ${error.message}`);
  });
});
server.listen(port, '127.0.0.1', () => {
  console.log(`development identity provider listening on ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
