// The page's own script, run once when the job card loads (gr.HTML js_on_load; `element` is the card, `watch`
// re-runs a function when the server sends a new card).
// 1. The progress bar's elapsed time ticks between updates and never goes back for a job.
// 2. The cancel confirmation behaves as a modal dialog: role and aria set, focus moved into it and kept there,
//    Escape means "No, keep running", focus goes back to Cancel when it closes.

const shownSeconds = {};

function clockText(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

function tickElapsed() {
  element.querySelectorAll(".job-elapsed[data-elapsed]").forEach((node) => {
    if (!node.dataset.seenAt) node.dataset.seenAt = String(Date.now());
    const seconds = parseFloat(node.dataset.elapsed) + (Date.now() - Number(node.dataset.seenAt)) / 1000;
    const job = node.dataset.job;
    shownSeconds[job] = Math.max(shownSeconds[job] || 0, seconds);
    node.textContent = clockText(shownSeconds[job]);
  });
}

setInterval(tickElapsed, 250);
watch("value", tickElapsed);

const FOCUSABLE = "button:not([disabled]), [href], input:not([disabled]), [tabindex]:not([tabindex='-1'])";
let dialogOpen = false;

function openDialog() {
  const overlay = document.getElementById("confirm-modal");
  if (!overlay || overlay.getClientRects().length === 0) return null;
  return overlay.querySelector("#confirm-dialog");
}

function onDialogChange() {
  const dialog = openDialog();
  const keep = dialog && dialog.querySelector("#confirm-no");
  if (keep && !dialogOpen) {
    dialogOpen = true;
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", "confirm-text");
    requestAnimationFrame(() => keep.focus());
  } else if (!dialog && dialogOpen) {
    dialogOpen = false;
    const cancel = document.getElementById("cancel");
    if (cancel && !cancel.disabled) cancel.focus();
  }
}

function onKey(event) {
  const dialog = openDialog();
  if (!dialog) return;
  if (event.key === "Escape") {
    event.preventDefault();
    event.stopPropagation();
    const keep = dialog.querySelector("#confirm-no");
    if (keep) keep.click();
  } else if (event.key === "Tab") {
    const stops = [...dialog.querySelectorAll(FOCUSABLE)];
    if (!stops.length) return;
    const first = stops[0];
    const last = stops[stops.length - 1];
    const inside = dialog.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }
}

new MutationObserver(onDialogChange).observe(document.body, {
  childList: true, subtree: true, attributes: true, attributeFilter: ["class", "style", "hidden"],
});
document.addEventListener("keydown", onKey, true);
