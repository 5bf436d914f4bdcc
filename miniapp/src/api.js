// The lookup API, one request at a time, each with a deadline. Every outcome is a value:
// {kind: "found", data} | {kind: "not_published", releaseAt, message} | {kind: <error>, message}.
// Nothing here throws, so the screen always has something to show.

const API = __API__;
export const TIMEOUT_MS = 10000;

const MESSAGES = {
  invalid_sbd: "Số báo danh phải gồm đúng 8 chữ số (ví dụ 01000123).",
  not_found: "Không tìm thấy thí sinh có số báo danh này. Vui lòng kiểm tra lại số báo danh trên giấy báo dự thi.",
  rate_limited: "Bạn tra cứu quá nhanh. Vui lòng đợi giây lát rồi thử lại.",
  server: "Hệ thống tra cứu đang bận hoặc gặp sự cố. Vui lòng thử lại sau ít phút.",
  timeout: "Máy chủ phản hồi quá lâu. Vui lòng thử lại.",
  offline: "Không kết nối được tới máy chủ tra cứu. Hãy kiểm tra kết nối mạng rồi thử lại.",
  bad_answer: "Máy chủ trả về dữ liệu không đọc được. Vui lòng thử lại sau.",
};

export const message = (kind) => MESSAGES[kind] || MESSAGES.server;

async function body(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** GET {API}/v1/scores/{sbd}, classified. */
export async function lookup(sbd, { timeoutMs = TIMEOUT_MS } = {}) {
  if (typeof navigator !== "undefined" && navigator.onLine === false) {
    return { kind: "offline", message: MESSAGES.offline };
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  let json;
  try {
    response = await fetch(`${API}/v1/scores/${encodeURIComponent(sbd)}`, {
      signal: controller.signal,
      headers: { Accept: "application/json" },
      credentials: "omit",
    });
    json = await body(response);
  } catch (error) {
    const kind = error && error.name === "AbortError" ? "timeout" : "offline";
    return { kind, message: MESSAGES[kind] };
  } finally {
    clearTimeout(timer);
  }
  const error = (json && json.error) || {};
  const status = response.status;
  if (status === 200) {
    if (!json || typeof json.scores !== "object") return { kind: "bad_answer", message: MESSAGES.bad_answer };
    return { kind: "found", data: json };
  }
  if (status === 403 && error.code === "not_published") {
    return { kind: "not_published", releaseAt: error.release_at || null, message: error.message };
  }
  if (status === 404 && error.code === "not_found") return { kind: "not_found", message: error.message || MESSAGES.not_found };
  if (status === 400) return { kind: "invalid_sbd", message: error.message || MESSAGES.invalid_sbd };
  if (status === 429) {
    const wait = Number(response.headers.get("Retry-After")) || 0;
    return { kind: "rate_limited", message: MESSAGES.rate_limited, wait };
  }
  if (status === 404) return { kind: "not_found", message: error.message || MESSAGES.server };
  return { kind: "server", message: error.message || MESSAGES.server };
}

/** A phổ điểm document (GET {API}/v1/stats/{year}[/{scope}]), or null: charts are extras, so
 * any failure just leaves them out. */
export async function stats(year, scope, { timeoutMs = TIMEOUT_MS } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const path = scope ? `${year}/${encodeURIComponent(scope)}` : `${year}`;
    const response = await fetch(`${API}/v1/stats/${path}`, {
      signal: controller.signal,
      headers: { Accept: "application/json" },
      credentials: "omit",
    });
    if (response.status !== 200) return null;
    const json = await body(response);
    return json && typeof json.distributions === "object" ? json : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
