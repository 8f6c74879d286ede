// The console's only script: refreshes the live part of a page without a
// reload, and posts replay forms without leaving the page. Everything works
// without it, by reloading.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var result = document.getElementById("result");

  function fragmentURL() {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    return u.toString();
  }

  var busy = false;
  function refresh() {
    if (!live || busy || document.hidden) return Promise.resolve();
    // Never pull the content from under the keyboard focus.
    if (live.contains(document.activeElement) && document.activeElement !== document.body) return Promise.resolve();
    busy = true;
    return fetch(fragmentURL(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (html !== null && html !== live.getAttribute("data-html")) {
          live.innerHTML = html;
          live.setAttribute("data-html", html);
          bind(live);
        }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  function say(text, ok) {
    if (!result) return;
    result.textContent = text;
    result.className = "flash " + (ok ? "ok" : "bad");
  }

  function bind(root) {
    var forms = root.querySelectorAll("form[data-fetch]");
    for (var i = 0; i < forms.length; i++) {
      if (forms[i].getAttribute("data-bound")) continue;
      forms[i].setAttribute("data-bound", "1");
      forms[i].addEventListener("submit", function (e) {
        e.preventDefault();
        var form = e.currentTarget;
        var body = new URLSearchParams(new FormData(form));
        var button = form.querySelector("button");
        if (button) button.disabled = true;
        fetch(form.action, {
          method: "POST", credentials: "same-origin", body: body,
          headers: { Accept: "application/json", "X-CSRF-Token": body.get("csrf") || "" }
        })
          .then(function (res) { return res.json(); })
          .then(function (r) { say(r.message, !r.error); })
          .catch(function () { say("The request failed: reload and try again.", false); })
          .then(function () {
            if (button) button.disabled = false;
            if (result) result.focus && result.setAttribute("tabindex", "-1");
            return refresh();
          });
      });
    }
  }

  bind(document);
  if (live) {
    live.setAttribute("data-html", live.innerHTML);
    window.setInterval(refresh, 2000);
    document.addEventListener("visibilitychange", refresh);
  }
})();
