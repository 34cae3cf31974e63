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

// Rewind: the restore runs on the server in one request; say so while it does.
const rewindForm = document.getElementById("rewind-form");
rewindForm?.addEventListener("submit", () => {
  const button = rewindForm.querySelector("button[type=submit]");
  button.disabled = true;
  document.getElementById("rewind-status").textContent = "Restoring… each file becomes a new version.";
});
