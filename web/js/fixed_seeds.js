// comfyui-pal: a PAL node added to the graph starts with its seed "fixed", so a fix that
// was judged good is repeated exactly on the next run (ComfyUI's own default is
// "randomize"). A loaded workflow keeps the value it saved: ComfyUI applies saved widget
// values after nodeCreated.
import { app } from "../../../scripts/app.js"; // served at /extensions/<pack>/js/

app.registerExtension({
  name: "comfyui-pal.fixedSeeds",
  nodeCreated(node) {
    if (!String(node.comfyClass ?? "").startsWith("PAL")) return;
    for (const widget of node.widgets ?? []) {
      if (widget.name === "control_after_generate") widget.value = "fixed";
    }
  },
});
