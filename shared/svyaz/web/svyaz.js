/*! svyaz.js: the svyaz site tag. One line on every page:
 *
 *   <script async src="https://<host>/svyaz.js" data-write-key="<write key>"></script>
 *
 * Optional attributes: data-endpoint (where events go, e.g. a brand domain; default: where this
 * file was loaded from), data-cookie-domain (share the id cookie across subdomains),
 * data-ym-counter (Yandex Metrica counter, found on the page otherwise), data-calltouch-mod-id.
 *
 * On each page view it sends one page call: the first-party svyaz id cookie (set when missing,
 * SameSite=Lax, 400 days from the last visit), the Metrica client id (_ym_uid, or ym(counter, 'getClientID')), the
 * GA client id (_ga), Calltouch's session and client ids (when its script is on the page), UTM
 * parameters and yclid / gclid / fbclid, the referrer, page URL and title. Forms call
 *
 *   svyaz('identify', {phone: '+7 909 123-45-67', email: '...', user_id: '...'});
 *   svyaz('track', 'lead', {form: 'callback'});
 *
 * Calls made before the tag loaded are kept by this stub and sent when it loads:
 *   <script>window.svyaz=window.svyaz||function(){(svyaz.q=svyaz.q||[]).push(arguments)}</script>
 *
 * Calls go to <endpoint>/v1/batch in the Segment tracking API's shape, by navigator.sendBeacon
 * (the write key travels in the body, so no header and no CORS preflight), by fetch(keepalive)
 * when a beacon is refused. Nothing here ever throws into the page. No build step: this file is
 * served as it is (the service only sets the cookie name below from SVYAZ_COOKIE_NAME).
 */
(function (window, document) {
  "use strict";
  var VERSION = "1.0.0";
  var COOKIE = "svyaz_id";
  var COOKIE_MAX_AGE = 34560000; // 400 days, in seconds: the most browsers keep (Chrome caps it)
  var METRICA_WAIT_MS = 1000; // at most this long for Metrica's asynchronous client id
  var CLICK_IDS = ["yclid", "gclid", "fbclid"];
  var UTM = { source: "utm_source", medium: "utm_medium", name: "utm_campaign", term: "utm_term", content: "utm_content" };

  var script = document.currentScript || document.querySelector("script[data-write-key]");
  var outbox = [];
  var ready = false;
  var anonymousId = null;
  var userId = null;
  var context = null;

  function attr(name) {
    return script ? script.getAttribute("data-" + name) : null;
  }

  function decode(text) {
    try {
      return decodeURIComponent(text.replace(/\+/g, " "));
    } catch (e) {
      return text;
    }
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq > 0 && parts[i].slice(0, eq) === name) return decode(parts[i].slice(eq + 1));
    }
    return null;
  }

  function randomHex(bytes) {
    var buffer = new Uint8Array(bytes);
    var out = "";
    window.crypto.getRandomValues(buffer);
    for (var i = 0; i < buffer.length; i++) out += (buffer[i] + 256).toString(16).slice(1);
    return out;
  }

  // svyaz's own first-party id (the same cookie the QR landing sets): kept when it is one of
  // ours, written again on every page view so it lives 400 days from the last visit.
  function visitorId() {
    var id = cookie(COOKIE);
    if (!/^[0-9a-f]{32}$/.test(id || "")) id = randomHex(16);
    var domain = attr("cookie-domain");
    document.cookie =
      COOKIE + "=" + id + "; path=/; max-age=" + COOKIE_MAX_AGE + "; SameSite=Lax" +
      (domain ? "; domain=" + domain : "") +
      (window.location.protocol === "https:" ? "; Secure" : "");
    return id;
  }

  function queryParameters() {
    var found = {};
    var pairs = window.location.search.slice(1).split("&");
    for (var i = 0; i < pairs.length; i++) {
      var eq = pairs[i].indexOf("=");
      if (eq > 0) found[decode(pairs[i].slice(0, eq))] = decode(pairs[i].slice(eq + 1));
    }
    return found;
  }

  function campaign(query) {
    var found = {};
    for (var field in UTM) if (query[UTM[field]]) found[field] = query[UTM[field]];
    for (var i = 0; i < CLICK_IDS.length; i++) if (query[CLICK_IDS[i]]) found[CLICK_IDS[i]] = query[CLICK_IDS[i]];
    return found;
  }

  function page() {
    var location = window.location;
    return {
      url: location.href,
      path: location.pathname,
      search: location.search,
      title: document.title,
      referrer: document.referrer
    };
  }

  // Calltouch's script answers ct('calltracking_params', modId) with the visit's session id.
  function calltouchIds(found) {
    if (typeof window.ct !== "function") return;
    try {
      var modId = attr("calltouch-mod-id");
      var params = modId ? window.ct("calltracking_params", modId) : window.ct("calltracking_params");
      if (params && params.length) params = params[0];
      if (params && params.sessionId) found.session_id = String(params.sessionId);
      if (params && params.clientId) found.ct_client_id = String(params.clientId);
    } catch (e) {
      /* a broken call-tracking script must not stop the page view */
    }
  }

  function metricaCounter() {
    var counter = attr("ym-counter");
    if (counter) return counter;
    try {
      var counters = window.Ya && window.Ya._metrika && window.Ya._metrika.getCounters();
      if (counters && counters[0] && counters[0].id) return counters[0].id;
    } catch (e) {
      /* not the Metrica we know: fall back to the snippet's queue */
    }
    var queued = (window.ym && window.ym.a) || []; // ym(...) calls made before Metrica loaded
    for (var i = 0; i < queued.length; i++) if (queued[i] && queued[i][1] === "init") return queued[i][0];
    return null;
  }

  // Ids from the site's other tags; Metrica's may come asynchronously (then at most 1 s later).
  function collectIds(done) {
    var found = {};
    var metrica = cookie("_ym_uid");
    var ga = cookie("_ga");
    if (metrica) found.ym_client_id = metrica;
    if (ga) found.ga_client_id = ga;
    calltouchIds(found);
    var counter = metrica || typeof window.ym !== "function" ? null : metricaCounter();
    if (!counter) return done(found);
    var finished = false;
    function finish(clientId) {
      if (finished) return;
      finished = true;
      if (clientId) found.ym_client_id = String(clientId);
      done(found);
    }
    window.setTimeout(finish, METRICA_WAIT_MS);
    try {
      window.ym(counter, "getClientID", finish);
    } catch (e) {
      finish(null);
    }
  }

  function endpoint() {
    var base = attr("endpoint") || ((script && script.src) || "").replace(/\/svyaz\.js([?#].*)?$/, "");
    return base.replace(/\/+$/, "");
  }

  function flush() {
    if (!outbox.length || !attr("write-key")) return;
    var body = JSON.stringify({ writeKey: attr("write-key"), sentAt: new Date().toISOString(), batch: outbox });
    var url = endpoint() + "/v1/batch";
    outbox = [];
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return;
    } catch (e) {
      /* refused (size, policy): try fetch */
    }
    try {
      window.fetch(url, { method: "POST", body: body, keepalive: true, credentials: "omit", headers: { "Content-Type": "text/plain" } })["catch"](function () {});
    } catch (e) {
      /* offline or blocked: the page goes on */
    }
  }

  function send(type, fields) {
    var call = {
      type: type,
      messageId: "svz-" + randomHex(16),
      timestamp: new Date().toISOString(),
      anonymousId: anonymousId,
      context: context
    };
    if (userId) call.userId = userId;
    for (var name in fields) call[name] = fields[name];
    outbox.push(call);
    if (ready) flush();
  }

  function copy(object) {
    var out = {};
    if (object && typeof object === "object") for (var name in object) out[name] = object[name];
    return out;
  }

  function run(args) {
    var command = args[0];
    if (command === "identify") {
      var traits = copy(args[1]);
      var id = traits.user_id != null ? traits.user_id : traits.userId;
      if (id != null && id !== "") userId = String(id);
      delete traits.user_id;
      delete traits.userId;
      send("identify", { traits: traits });
    } else if (command === "track" && args[1]) {
      send("track", { event: String(args[1]), properties: copy(args[2]) });
    } else if (command === "page") {
      send("page", { name: args[1] || undefined, properties: page() });
    }
  }

  function svyaz() {
    try {
      run(arguments);
    } catch (e) {
      /* never into the page */
    }
  }

  try {
    var stub = window.svyaz;
    if (stub && stub.version) return; // loaded twice
    var queued = (stub && stub.q) || [];
    svyaz.version = VERSION;
    window.svyaz = svyaz;
    if (!attr("write-key") && window.console) window.console.warn("svyaz.js: data-write-key is missing");
    anonymousId = visitorId();
    var query = queryParameters();
    context = {
      page: page(),
      campaign: campaign(query),
      userAgent: navigator.userAgent,
      locale: navigator.language,
      library: { name: "svyaz.js", version: VERSION },
      identifiers: {}
    };
    send("page", { properties: page() });
    for (var i = 0; i < queued.length; i++) svyaz.apply(null, queued[i]);
    window.addEventListener("pagehide", function () {
      ready = true;
      flush();
    });
    collectIds(function (found) {
      for (var kind in found) context.identifiers[kind] = found[kind];
      ready = true;
      flush();
    });
  } catch (e) {
    /* the tag fails alone; the page goes on */
  }
})(window, document);
