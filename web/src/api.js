// The three services' HTTP APIs, and the two ways a call can fail: the service
// answered with an error ({"error": {"code", "message", ...}}), or it did not
// answer at all (ServiceDown), which the page shows as one banner.

export class ServiceError extends Error {
  constructor(service, status, error, retryAfterS) {
    super(error.message || `HTTP ${status}`);
    this.service = service;
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.details = error;
    this.retryAfterS = retryAfterS;
  }
}

// A call the service has not answered after this long is given up: the page says so at
// once rather than waiting for the browser's own minutes-long timeout.
export const TIMEOUT_MS = 10000;

export class ServiceDown extends Error {
  constructor(service, cause, timedOut = false) {
    super(timedOut ? `the ${service} service did not answer within ${TIMEOUT_MS / 1000} s` : `the ${service} service did not answer`);
    this.service = service;
    this.cause = cause;
  }
}

// "max-age=42" -> 42; absent or unreadable -> null.
export function maxAgeOf(headers) {
  const match = /max-age=(\d+)/.exec(headers.get("Cache-Control") || "");
  return match ? Number(match[1]) : null;
}

export class Api {
  constructor(config) {
    // Base URLs without a trailing slash; "" means the page's own origin (CloudFront routes /api/*).
    this.bases = {};
    for (const service of ["quote", "backtest", "alerts"]) {
      this.bases[service] = String(config[service] ?? "").replace(/\/+$/, "");
    }
  }

  url(service, path, params = {}) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, value);
    }
    const text = query.toString();
    return `${this.bases[service]}${path}${text ? `?${text}` : ""}`;
  }

  // Resolves to {status, headers, body}; body is parsed JSON, or a Blob when `blob` is set.
  async call(service, path, { method = "GET", params, headers = {}, json, signal, blob = false, cache } = {}) {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), TIMEOUT_MS);
    const init = { method, headers: { ...headers }, signal: signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal, cache };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(this.url(service, path, params), init);
    } catch (error) {
      if (error.name === "AbortError" && !timeout.signal.aborted) throw error; // the caller's own
      throw new ServiceDown(service, error, timeout.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) {
      let error = {};
      try {
        error = (await response.json()).error || {};
      } catch {
        error = { message: `${service} answered HTTP ${response.status}` };
      }
      // API Gateway in front of a stopped or overloaded service answers 502/503/504 without our body.
      if (response.status >= 502 && !error.code) throw new ServiceDown(service, new Error(`HTTP ${response.status}`));
      const retry = Number(response.headers.get("Retry-After")) || null;
      throw new ServiceError(service, response.status, error, retry);
    }
    const body = blob ? await response.blob() : response.status === 204 ? null : await response.json();
    return { status: response.status, headers: response.headers, body };
  }
}
