// The draw pad's canvas, in the browser (an anywidget module; mnist_lab/widgets.py is its Python side).
//
// The ink is drawn here, the moment the pen moves, whatever the kernel is doing. The pen's path goes to the kernel
// as a list of operations ("down" x y width, "move" x y, "up", "clear"), which it draws the same way on the image
// the model reads. One batch is in flight at a time: the next leaves when the kernel has read the drawing ("read"),
// and no sooner than `every` seconds after the one before while the pen moves (at once when it is lifted). So a
// busy kernel gets one batch with everything it missed, and reads the drawing once for it. Whenever the kernel's
// drawing changes (also by strokes drawn from Python), the canvas is redrawn from it.

function paint(ctx, size, ops) {
  // Draw `ops` on `ctx` as the kernel draws them (a round-capped line per segment); "clear" wipes to white.
  let last = null;
  let width = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "black";
  for (const op of ops) {
    if (op[0] === "clear") {
      ctx.fillStyle = "white";
      ctx.fillRect(0, 0, size, size);
      last = null;
    } else if (op[0] === "down") {
      width = op[3];
      last = [op[1], op[2]];
      segment(ctx, last, last, width);
    } else if (op[0] === "move" && last) {
      segment(ctx, last, [op[1], op[2]], width);
      last = [op[1], op[2]];
    } else if (op[0] === "up") {
      last = null;
    }
  }
}

function segment(ctx, [x0, y0], [x1, y1], width) {
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

function render({ model, el }) {
  const size = model.get("size");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  canvas.className = "mnist-pad-canvas";
  Object.assign(canvas.style, {
    width: `${size}px`, height: `${size}px`, border: "2px solid #888", touchAction: "none", cursor: "crosshair",
    display: "block", boxSizing: "content-box",
  });
  const clear = document.createElement("button");
  clear.className = "jupyter-widgets jupyter-button widget-button mnist-clear";
  clear.textContent = "消す";
  clear.style.marginTop = "4px";
  el.append(canvas, clear);

  const ctx = canvas.getContext("2d");
  paint(ctx, size, [["clear"], ...model.get("ops")]); // what was drawn before this page showed the pad

  let queue = [];        // operations not yet sent
  let sent = [];         // the batch with the kernel
  let waiting = false;   // a batch is with the kernel
  let sentAt = -Infinity;
  let timer = null;
  let last = null;       // the pen's last point while it is down
  let width = 0;         // and its width (the slider's when the stroke began)
  let pointer = null;    // the pointer drawing (the first finger only)

  function flush(now) {
    if (waiting || queue.length === 0) return;
    const wait = model.get("every") * 1000 - (performance.now() - sentAt);
    if (!now && wait > 0) {
      if (timer === null) timer = setTimeout(() => { timer = null; flush(true); }, wait);
      return;
    }
    clearTimeout(timer);
    timer = null;
    model.send({ ops: queue });
    sent = queue;
    queue = [];
    waiting = true;
    sentAt = performance.now();
  }

  function where(event) {
    const box = canvas.getBoundingClientRect();
    const scale = size / canvas.clientWidth; // the page may be zoomed
    return [Math.round((event.clientX - box.left - canvas.clientLeft) * scale),
            Math.round((event.clientY - box.top - canvas.clientTop) * scale)];
  }

  function down(event) {
    if (pointer !== null || !event.isPrimary || event.button > 0) return;
    event.preventDefault();
    pointer = event.pointerId;
    last = where(event);
    width = model.get("line_width");
    const op = ["down", ...last, width];
    paint(ctx, size, [op]);
    queue.push(op);
    flush(false);
  }

  function move(event) {
    if (event.pointerId !== pointer) return;
    event.preventDefault();
    const point = where(event);
    if (point[0] === last[0] && point[1] === last[1]) return;
    paint(ctx, size, [["down", ...last, width], ["move", ...point]]);
    last = point;
    queue.push(["move", ...point]);
    flush(false);
  }

  function up(event) {
    if (event.pointerId !== pointer) return;
    pointer = null;
    last = null;
    queue.push(["up"]);
    flush(true);
  }

  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  for (const name of ["pointerup", "pointercancel", "pointerleave"]) canvas.addEventListener(name, up);
  function wipe() {
    paint(ctx, size, [["clear"]]);
    queue.push(["clear"]);
    flush(true);
  }
  // A press is a pointer going down and up on the button (mouse, pen or finger): a page around the pad may cancel
  // the click a tap would make. A click without a pointer (Enter or Space on the focused button) wipes too.
  let pressed = false;
  clear.addEventListener("pointerdown", () => { pressed = true; });
  clear.addEventListener("pointerleave", () => { pressed = false; });
  clear.addEventListener("pointerup", () => { if (pressed) { pressed = false; wipe(); } });
  clear.addEventListener("click", (event) => { if (event.detail === 0) wipe(); });
  function onMessage(message) {
    if (message.type === "read") {
      waiting = false;
      flush(pointer === null);
    } else if (message.type === "clear") { // the kernel wiped the pad (pad.clear() in Python)
      paint(ctx, size, [["clear"]]);
    }
  }
  // The kernel's drawing changed (a batch read, or strokes drawn from Python: pad.stroke, pen_down/move/up): show
  // what the kernel reads, with what this page drew since that it has not read yet.
  function repaint() {
    paint(ctx, size, [["clear"], ...model.get("ops"), ...(waiting ? sent : []), ...queue]);
  }
  model.on("msg:custom", onMessage);
  model.on("change:ops", repaint);
  return () => { model.off("msg:custom", onMessage); model.off("change:ops", repaint); };
}

export default { render };
