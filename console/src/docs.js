// The API reference (/docs/): Swagger UI over /api/openapi.json, with the
// console's session token (this tab's sessionStorage) on the document's
// fetch and on every "Try it out" call. Nothing is fetched from elsewhere
// (no validator, no fonts).
const token = (() => { try { return sessionStorage.getItem('agentfleet.token') || ''; } catch { return ''; } })();

if (!token) {
  document.getElementById('docs-signin').hidden = false;
} else {
  fetch('/api/whoami', { headers: { Authorization: 'Bearer ' + token } })
    .then((r) => (r.ok ? r.json() : null))
    .then((env) => { if (env && env.payload) document.getElementById('docs-who').textContent = 'signed in as ' + env.payload.name; })
    .catch(() => {});
  const ui = window.SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger',
    deepLinking: true,
    validatorUrl: null,
    displayRequestDuration: true,
    showExtensions: true, // x-scope and x-audited: the rule of each operation
    docExpansion: 'list',
    defaultModelsExpandDepth: 0,
    requestInterceptor: (req) => {
      if (!req.headers.Authorization) req.headers.Authorization = 'Bearer ' + token;
      return req;
    },
    onComplete: () => ui.preauthorizeApiKey('bearer', token),
  });
}
