// Number and text formatting shared by every part of the viewer.

export function text(value) {
  return value === null || value === undefined ? "" : String(value);
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// Heights are written with up to 4 decimals in the outputs; Number() drops the padding.
export function mmText(value) {
  return value === null || value === undefined || value === "" ? "" : `${Number(value)} mm`;
}

export function areaText(mm2) {
  return `${Number(mm2).toFixed(2)} mm²`;
}

export function volumeText(mm3) {
  if (mm3 === null || mm3 === undefined) return "";
  const value = Number(mm3);
  return value >= 1000 ? `${(value / 1000).toFixed(2)} cm³` : `${value.toFixed(1)} mm³`;
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

export function rangeText(range) {
  if (!Array.isArray(range) || range.length !== 2) return "";
  return `${Number(range[0])} – ${Number(range[1])} mm`;
}

// "Build Plate/Island In Hole 01" + "Part.clf" → "Build Plate/Island In Hole 01/Part.clf";
// a file directly under Models/ has no folder.
export function filePath(folder, name) {
  return folder ? `${folder}/${name}` : text(name);
}

export function element(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = text(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
