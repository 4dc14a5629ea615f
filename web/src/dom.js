// A few DOM helpers; every piece of text goes in as a text node, never as HTML.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The one row of a table with nothing in it, saying so (and what to do).
export function emptyRow(table, text) {
  const columns = table.querySelectorAll("thead th").length;
  return h("tr", { class: "empty" }, h("td", { colspan: String(columns), class: "muted" }, text));
}

export function show(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

// One banner for every service that is down, so a failure is said once, clearly.
export class Banner {
  constructor(node) {
    this.node = node;
    this.messages = new Map();
  }

  set(service, message) {
    if (message) this.messages.set(service, message);
    else this.messages.delete(service);
    this.node.textContent = [...this.messages.values()].join(" ");
    this.node.hidden = this.messages.size === 0;
    this.node.dataset.services = [...this.messages.keys()].join(" ");
  }
}
