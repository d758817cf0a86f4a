// synclayer dashboard: optional enhancements. Every page works without
// this script; it adds live updates (the event log as Server-Sent Events),
// runs "Sync now" in place, and asks before deleting.
(function () {
  "use strict";

  // Replaces each live region ([data-live]) of the page by its fresh copy.
  function refreshLive() {
    return fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) { el.replaceWith(fresh); }
        });
        wire(document);
      })
      .catch(function () {});
  }

  // Coalesces refreshes: a burst of events costs one.
  var pending = null;
  function scheduleRefresh() {
    if (pending) { return; }
    pending = setTimeout(function () { pending = null; refreshLive(); }, 250);
  }

  function badge(state) {
    var s = document.createElement("span");
    var cls = { completed: "ok", failed: "bad", queued: "busy", running: "busy" }[state] || "idle";
    s.className = "badge " + cls;
    s.textContent = state;
    return s;
  }

  // One event stream per layer and page, shared by everything that
  // listens to it: browsers allow few connections per host.
  // A listener that joins late gets the events after its own starting
  // point that the stream has already seen (a run can finish before the
  // answer that names it arrives).
  var streams = {};
  function listen(layer, after, fn) {
    var st = streams[layer];
    if (!st) {
      st = streams[layer] = { fns: [], seen: [], es: new EventSource("/ui/layers/" + encodeURIComponent(layer) + "/events?after=" + encodeURIComponent(after)) };
      st.es.onmessage = function (m) {
        var ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        st.seen.push(ev);
        if (st.seen.length > 500) { st.seen.shift(); }
        st.fns.slice().forEach(function (f) { f(ev); });
      };
    }
    var on = true;
    function off() {
      if (!on) { return; }
      on = false;
      st.fns = st.fns.filter(function (f) { return f !== call; });
      if (st.fns.length === 0) { st.es.close(); delete streams[layer]; }
    }
    function call(ev) { if (on) { fn(ev, off); } }
    st.seen.forEach(function (ev) { if (ev.seq > +after) { call(ev); } });
    if (on) { st.fns.push(call); }
    return off;
  }

  // What changes the live regions of a page.
  var changes = /^(sync\.(started|completed|failed|paused|resumed)|revision\.(pinned|unpinned)|connection\.(created|deleted|needs_attention|recovered))$/;

  // follow shows a run's progress in its box until it ends.
  function follow(box, layer, run, after) {
    var state = box.querySelector(".runstate");
    if (!state) { return; }
    listen(layer, after, function (ev, stop) {
      if (changes.test(ev.type)) { scheduleRefresh(); }
      if (ev.run !== run) { return; }
      var s = null;
      if (ev.type === "sync.started") { s = "running"; }
      if (ev.type === "sync.completed") { s = "completed"; }
      if (ev.type === "sync.failed") { s = "failed"; }
      if (!s) { return; }
      state.replaceChildren(badge(s));
      if (ev.message) { state.append(" " + ev.message); }
      if (s === "completed" || s === "failed") {
        box.dataset.done = s;
        var r = box.querySelector(".refresh");
        if (r) { r.remove(); }
        stop();
      }
    });
  }

  function showRun(layer, run, url, after) {
    var box = document.getElementById("run-" + layer);
    if (!box) { return; }
    box.dataset.run = run;
    delete box.dataset.done;
    var a = document.createElement("a");
    a.href = url;
    a.textContent = run;
    var state = document.createElement("span");
    state.className = "runstate";
    state.append(badge("queued"));
    box.replaceChildren("Run ", a, ": ", state);
    follow(box, layer, run, after);
  }

  function wire(root) {
    root.querySelectorAll("form[data-js=sync]:not([data-wired])").forEach(function (f) {
      f.dataset.wired = "1";
      f.addEventListener("submit", function (e) {
        e.preventDefault();
        var body = new URLSearchParams(new FormData(f));
        // Only when the request could not be sent does the form go the
        // plain way: a run started once must not start twice.
        fetch(f.action, { method: "POST", body: body, credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": body.get("csrf") } })
          .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); }, function () { f.submit(); return null; })
          .then(function (x) {
            if (!x) { return; }
            if (!x.ok) {
              var box = document.getElementById("run-" + f.dataset.layer);
              if (box) { box.textContent = x.j.error || "The run could not be started."; }
              return;
            }
            showRun(x.j.layer, x.j.run, x.j.url, x.j.after);
            scheduleRefresh();
          })
          .catch(function (err) {
            var box = document.getElementById("run-" + f.dataset.layer);
            if (box) { box.textContent = "The run was asked for; reload the page to follow it (" + err + ")."; }
          });
      });
    });
    root.querySelectorAll("form[data-confirm]:not([data-wired])").forEach(function (f) {
      f.dataset.wired = "1";
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); }
      });
    });
  }

  function activity() {
    var status = document.getElementById("live-status");
    var list = document.getElementById("events");
    if (!status || !list || !status.dataset.stream) { return; }
    var layer = location.pathname.split("/")[3];
    var es = new EventSource(status.dataset.stream);
    es.onopen = function () { status.firstChild.textContent = "Live: new events appear at the top. "; };
    es.onerror = function () { status.firstChild.textContent = "Reconnecting… "; };
    es.onmessage = function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      var none = document.getElementById("no-events");
      if (none) { none.remove(); }
      var li = document.createElement("li");
      li.className = "event fresh" + (/failed|crashed/.test(ev.type) ? " bad" : "");
      li.dataset.seq = ev.seq;
      var seq = document.createElement("span");
      seq.className = "seq mono";
      seq.textContent = "#" + ev.seq;
      var t = document.createElement("time");
      t.dateTime = ev.time;
      t.textContent = ev.time.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
      var type = document.createElement("strong");
      type.className = "type";
      type.textContent = ev.type;
      li.append(seq, " ", t, " ", type);
      if (ev.run) {
        var a = document.createElement("a");
        a.className = "mono";
        a.href = "/ui/layers/" + layer + "/runs/" + encodeURIComponent(ev.run);
        a.textContent = ev.run;
        li.append(" ", a);
      }
      if (ev.source) {
        var s = document.createElement("span");
        s.textContent = ev.source + (ev.sync ? "/" + ev.sync : "");
        li.append(" ", s);
      }
      if (ev.connection) {
        var c = document.createElement("span");
        var ca = document.createElement("a");
        ca.className = "mono";
        ca.href = "/ui/layers/" + layer + "/connections/" + encodeURIComponent(ev.source || "") + "/" + encodeURIComponent(ev.connection);
        ca.textContent = ev.connection;
        c.append("connection ", ca);
        li.append(" ", c);
      }
      if (ev.message) {
        var msg = document.createElement("span");
        msg.className = "msg";
        msg.textContent = ev.message;
        li.append(" ", msg);
      }
      list.prepend(li);
      while (list.children.length > 500) { list.lastElementChild.remove(); }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.dataset.js = "ready";
    wire(document);
    activity();
    // A layer's page stays live: runs started elsewhere (schedules, hooks,
    // the API) show up as they happen.
    var live = document.querySelector("[data-follow]");
    if (live) {
      listen(live.dataset.follow, live.dataset.after, function (ev) {
        if (changes.test(ev.type)) { scheduleRefresh(); }
      });
    }
    // A run started without script (the page came back with ?run=): follow it.
    document.querySelectorAll(".runbox[data-run]").forEach(function (box) {
      if (/queued|running/.test(box.textContent)) {
        follow(box, box.dataset.layer, box.dataset.run, box.dataset.after);
      }
    });
  });
})();
