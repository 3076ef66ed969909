// /docs: Swagger UI (Public/vendor/swagger-ui) on this node's /openapi.json. A file, not inline
// code, so the page works under the server's Content-Security-Policy (script-src 'self').
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // "Try it out" sends requests from this page to this node (connect-src 'self').
    tryItOutEnabled: false,
    persistAuthorization: false,
    // No validator badge: it would load an image from another site.
    validatorUrl: null,
  });
});
