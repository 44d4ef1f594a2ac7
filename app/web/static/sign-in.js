// Sign-in: POST the key as JSON (never in a URL), then go on to the page asked for. Without JavaScript the
// form posts itself and the server answers with a redirect.
"use strict";
(function () {
  const form = document.getElementById("sign-in");
  const error = document.getElementById("sign-in-error");
  const wanted = new URLSearchParams(location.search).get("next");
  const next = wanted && wanted.startsWith("/") && !wanted.startsWith("//") ? wanted : "/annotate";
  document.getElementById("next").value = next;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const key = form.elements.key.value.trim();
    let response;
    try {
      response = await fetch("/v1/session", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ key }),
        credentials: "same-origin",
      });
    } catch (_) {
      error.textContent = "The server cannot be reached. Check your connection and try again.";
      return;
    }
    if (response.ok) {
      form.elements.key.value = "";
      // With no page asked for, data teams and admins land on the dashboard, annotators on /annotate.
      const role = (await response.json()).role;
      location.assign(wanted || role === "annotator" ? next : "/dashboard");
      return;
    }
    let detail = "";
    try { detail = (await response.json()).detail || ""; } catch (_) { /* not JSON */ }
    error.textContent = response.status === 429
      ? "Too many attempts. Wait a minute and try again."
      : "That key was not accepted" + (detail ? ": " + detail : ".");
    form.elements.key.focus();
  });
})();
