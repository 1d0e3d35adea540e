// The console's only script (the CSP forbids inline ones): htmx requests carry the CSRF token.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});
// A button with data-copy="ID" copies that element's text (a DM to send by hand).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) { return; }
  var source = document.getElementById(button.dataset.copy);
  navigator.clipboard.writeText(source.innerText).then(function () { button.textContent = "Copiado"; });
});
// A form with data-confirm="question" is sent only after the person confirms.
document.addEventListener("submit", function (event) {
  var question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) { event.preventDefault(); }
});
