// Every call into the Zalo host goes through this module, and only this one.
//
// Inside Zalo, zmp-sdk talks to the app around us. A test page (or a developer's browser)
// may put a stand-in of the host on `window.__DIEMTHI_HOST__` before the app loads; it then
// answers every call here and can record what was asked. Outside Zalo with no stand-in the
// Zalo-only actions are not offered (the app links to the OA's public page instead), and a
// call made anyway rejects, as zmp-sdk's own calls do there (code -2000): callers handle it.
import "./sdk-login.js"; // before zmp-sdk: it must listen when the SDK logs in
import { followOA as sdkFollowOA, openChat as sdkOpenChat } from "zmp-sdk/apis";

const ZALO_HOST = "h5.zdn.vn"; // where Zalo serves Mini Apps: https://h5.zdn.vn/zapps/<app id>/

/** Running as a Mini App inside Zalo (decides the router: the host's path, or in memory). */
export const inZalo =
  window.location.hostname === ZALO_HOST && window.location.pathname.startsWith("/zapps/");

const standIn = window.__DIEMTHI_HOST__;
const sdk = { followOA: sdkFollowOA, openChat: sdkOpenChat };

/** Whether followOA/openChat can be asked of someone. */
export const hostAvailable = inZalo || Boolean(standIn);

function call(name, args) {
  const impl = standIn ? standIn[name] : hostAvailable ? sdk[name] : null;
  if (typeof impl !== "function") {
    return Promise.reject({ code: -2000, message: `${name}: not inside Zalo` });
  }
  // A synchronous throw becomes a rejection, so callers have one path for every failure.
  return new Promise((resolve) => resolve(impl(args)));
}

/** Ask the user to follow the Official Account (Zalo shows its own confirmation). */
export const followOA = (id) => call("followOA", { id });

/** Open the chat with the OA, the message typed in for the user to send. */
export const openChat = (id, message) => call("openChat", { type: "oa", id, message });

/** The OA's public page, where a plain browser can start the same chat. */
export const oaLink = (id) => `https://zalo.me/${id}`;
