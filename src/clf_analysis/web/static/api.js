// The service's HTTP API as the viewer uses it.

// Relative to /ui/, so that the viewer also works when the service is mounted below a prefix.
const ROOT = new URL("../", document.baseURI);

export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), ROOT).toString();
}

export async function api(path, options = {}) {
  const response = await fetch(apiUrl(path), options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    // Every error of the service is problem+json with `detail` (and legacy `message`).
    const detail = body && (body.detail || body.message);
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return { body, response };
}

export const buildPath = (buildId) => `api/builds/${encodeURIComponent(buildId)}`;

export const FINISHED = new Set(["completed", "failed", "cancelled"]);
