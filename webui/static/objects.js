// The object browser's client side. Every page works without it (plain links and
// forms); this adds: select all and the selection count, thumbnails that retry once when
// /api/img was busy, and the image URL builder's live preview.
document.documentElement.classList.add("js");

// --- selection -----------------------------------------------------------------------
const selection = document.getElementById("selection");
if (selection) {
  const boxes = () => [...selection.querySelectorAll('tbody input[type="checkbox"]')];
  const all = document.getElementById("select-all");
  const count = document.getElementById("selected-count");
  const actions = selection.querySelectorAll("[data-needs-selection]");
  const update = () => {
    const picked = boxes().filter((box) => box.checked).length;
    count.textContent = picked ? `${picked} selected` : "";
    for (const button of actions) button.disabled = picked === 0;
    if (all) {
      all.checked = picked > 0 && picked === boxes().length;
      all.indeterminate = picked > 0 && picked < boxes().length;
    }
  };
  all?.addEventListener("change", () => {
    for (const box of boxes()) box.checked = all.checked;
    update();
  });
  selection.addEventListener("change", (event) => {
    if (event.target !== all) update();
  });
  update();
}

// --- thumbnails and previews -------------------------------------------------------------
// /api/img answers 503 (busy) or 429 when many thumbnails are asked at once: try once
// more a moment later with a fresh element, then show the file icon instead.
function replaceWithIcon(img) {
  const icon = document.createElement("span");
  const kind = img.closest("tr")?.dataset.kind || "file";
  icon.className = `icon file-icon kind-${kind}`;
  icon.setAttribute("aria-hidden", "true");
  img.replaceWith(icon);
}

function watchThumbnail(img) {
  img.addEventListener(
    "error",
    () => {
      if (img.dataset.retried) {
        replaceWithIcon(img);
        return;
      }
      setTimeout(() => {
        const again = img.cloneNode();
        again.dataset.retried = "1";
        again.addEventListener("error", () => replaceWithIcon(again), { once: true });
        img.replaceWith(again);
      }, 1500 + Math.random() * 1000);
    },
    { once: true },
  );
  // An image that failed before this script ran (cached error): treat it now.
  if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) {
    img.dispatchEvent(new Event("error"));
  }
}

for (const img of document.querySelectorAll("img.thumb")) watchThumbnail(img);

for (const img of document.querySelectorAll("img[data-fallback]")) {
  const fail = () => {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = img.dataset.fallback;
    img.replaceWith(note);
  };
  img.addEventListener("error", fail, { once: true });
  if (img.complete && img.naturalWidth === 0) fail();
}

// --- copy buttons ------------------------------------------------------------------------
for (const button of document.querySelectorAll("button[data-copy-input]")) {
  button.addEventListener("click", async () => {
    const input = document.getElementById(button.dataset.copyInput);
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "Copied";
    } catch {
      input.select(); // no clipboard permission (plain http): selected for Ctrl+C
      button.textContent = "Press Ctrl+C";
    }
    setTimeout(() => (button.textContent = "Copy"), 2000);
  });
}

// --- image URL builder -------------------------------------------------------------------
const builder = document.getElementById("image-builder");
if (builder) {
  const status = document.getElementById("builder-status");
  const urlField = document.getElementById("built-url");
  const publicField = document.getElementById("public-url");
  const preview = document.getElementById("built-preview");
  let timer = 0;
  let asked = 0;

  async function refresh() {
    const mine = ++asked;
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(builder)) {
      if (String(value).trim() !== "") params.set(name, String(value).trim());
    }
    status.textContent = "Updating…";
    let answer;
    try {
      const response = await fetch(`${builder.dataset.endpoint}?${params}`, { credentials: "same-origin" });
      answer = await response.json();
      if (!response.ok) throw new Error(answer?.error?.message || `HTTP ${response.status}`);
    } catch (error) {
      if (mine === asked) status.textContent = `Not a valid URL: ${error.message}`;
      return;
    }
    if (mine !== asked) return; // a newer change is on its way
    urlField.value = answer.url;
    if (publicField && answer.publicUrl) publicField.value = answer.publicUrl;
    status.textContent = "Loading the preview…";
    preview.onload = () => (status.textContent = `Preview: ${preview.naturalWidth} × ${preview.naturalHeight} px.`);
    preview.onerror = () => (status.textContent = "The transform failed for these parameters.");
    preview.src = answer.preview;
    // The address bar keeps the parameters, so a reload shows the same URL.
    const here = new URLSearchParams(params);
    history.replaceState(null, "", `${location.pathname}?${here}`);
  }

  builder.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  builder.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
}
