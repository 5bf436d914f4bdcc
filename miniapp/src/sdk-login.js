// zmp-sdk calls its `login()` the moment it is imported and leaves the promise unhandled;
// outside Zalo that promise rejects (code -2000, api "login"). This module is imported just
// before zmp-sdk (see host.js) and handles that one rejection, so nothing goes unhandled.
window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (reason && typeof reason === "object" && reason.api === "login") event.preventDefault();
});
