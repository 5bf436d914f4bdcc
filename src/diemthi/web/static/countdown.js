// The embargo page's live countdown; the release time is in the HTML, this only counts.
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var at = Date.parse(el.getAttribute("data-release"));
  if (isNaN(at)) return;
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var s = Math.ceil((at - Date.now()) / 1000);
    if (s <= 0) {
      el.textContent = "Đã đến giờ công bố, đang tải lại trang…";
      // spread the reloads of a crowd over a few seconds
      setTimeout(function () { location.reload(); }, Math.random() * 5000);
      return;
    }
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60), sec = s % 60;
    el.textContent = "Còn " + (d ? d + " ngày " : "") + two(h) + ":" + two(m) + ":" + two(sec);
    setTimeout(tick, 1000 - Date.now() % 1000);
  }
  el.hidden = false;
  tick();
})();
