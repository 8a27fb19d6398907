// SPDX-License-Identifier: Apache-2.0 — part of Mamori (this repository), not third-party code.
// Mamori console: progressive enhancement only; every page works without it.
// Tells the server the browser's time zone (a cookie) so that dates are shown in it, naming
// the zone; reloads once when it changed.
(function () {
  "use strict";
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || !/^[A-Za-z0-9_+\/-]{1,64}$/.test(zone)) { return; }
  var current = document.cookie.split("; ").filter(function (c) { return c.indexOf("mamori_tz=") === 0; })[0];
  if (current === "mamori_tz=" + zone) { return; }
  document.cookie = "mamori_tz=" + zone + "; Path=/; Secure; SameSite=Strict; Max-Age=31536000";
  if (!sessionStorage.getItem("mamori_tz_reloaded")) {
    sessionStorage.setItem("mamori_tz_reloaded", "1");
    location.reload();
  }
})();
