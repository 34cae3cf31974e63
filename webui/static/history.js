// The Time Machine's client side (the pages work without it): a picture /api/img could
// not make (a PDF page past the last) becomes a note, and the overlay's slider uncovers
// the newer version over the older one. Styles are set through the CSSOM, which the
// page's CSP (no inline styles) allows.
for (const img of document.querySelectorAll("img[data-fallback]")) {
  const fail = () => {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = img.dataset.fallback;
    img.replaceWith(note);
  };
  img.addEventListener("error", fail, { once: true });
  if (img.complete && img.naturalWidth === 0 && img.src) fail();
}

const slider = document.getElementById("overlay-slider");
const top = document.getElementById("overlay-top");
if (slider && top) {
  const show = () => {
    top.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
  };
  slider.addEventListener("input", show);
  show();
}

// Rewind: the restores run on the server; the form is sent with fetch asking for their
// progress (one JSON line per restore), shown on a progress bar, and the page then goes
// where the plain form would have redirected. Without this script the form posts as is.
const rewindForm = document.getElementById("rewind-form");
rewindForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = rewindForm.querySelector("button[type=submit]");
  const bar = document.getElementById("rewind-progress");
  const status = document.getElementById("rewind-status");
  button.disabled = true;
  bar.hidden = false;
  status.textContent = "Restoring…";
  const show = (step) => {
    if (step.total !== undefined) {
      bar.max = Math.max(step.total, 1);
      bar.value = step.done;
      status.textContent = `Restored ${step.done} of ${step.total} file(s)…`;
    } else if (step.next) {
      window.location.assign(step.next);
    } else if (step.error) {
      status.textContent = step.error;
      button.disabled = false;
    }
  };
  try {
    const response = await fetch(rewindForm.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(rewindForm)),
      headers: { accept: "application/x-ndjson" },
    });
    if (!response.ok) throw new Error(`The server answered ${response.status}.`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        show(JSON.parse(buffer.slice(0, end)));
        buffer = buffer.slice(end + 1);
      }
    }
  } catch (error) {
    status.textContent = `${error.message} Reload the page to see what was restored.`;
    button.disabled = false;
  }
});
