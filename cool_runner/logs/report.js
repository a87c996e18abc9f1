// cool-runner report: tables rendered from the JSON beside them; click a header to sort, type to filter.
(function () {
  "use strict";

  var PAGE_SIZES = [50, 100, 500, 1000];
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  // Numbers before text, numbers by value, text in natural order ("run2" before "run10").
  function compare(a, b) {
    var na = typeof a === "number", nb = typeof b === "number";
    if (na && nb) { return a - b; }
    if (na) { return -1; }
    if (nb) { return 1; }
    return collator.compare(show(a), show(b));
  }

  // Lists and mappings as flow text, e.g. [0.5, 0.25] and {lr: 0.1}; floats to 6 significant digits.
  function show(value) {
    if (value === null) { return ""; }
    if (Array.isArray(value)) { return "[" + value.map(show).join(", ") + "]"; }
    if (typeof value === "object") {
      return "{" + Object.keys(value).map(function (key) { return key + ": " + show(value[key]); }).join(", ") + "}";
    }
    if (typeof value === "number" && !Number.isInteger(value)) {
      var magnitude = Math.abs(value);
      return magnitude >= 1e-3 && magnitude < 1e6 ? String(Number(value.toPrecision(6))) : value.toPrecision(4);
    }
    return String(value);
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function Table(root) {
    var data = JSON.parse(document.getElementById(root.getAttribute("data-source")).textContent);
    this.columns = data.columns;
    this.rows = data.rows;
    this.order = this.rows.map(function (_row, index) { return index; });
    this.view = this.order;
    this.texts = new Array(this.rows.length);
    this.terms = [];
    this.sortColumn = -1;
    this.direction = 1;
    this.page = 0;
    this.size = 100;
    this.build(root);
    this.render();
  }

  Table.prototype.build = function (root) {
    var self = this;
    var controls = element("div", { "class": "controls" });
    this.input = element("input", { type: "search", "class": "filter", placeholder: "Filter rows: type words that must all appear",
      "aria-label": "filter rows" });
    this.count = element("span", { "class": "count", "aria-live": "polite" });
    var sizes = element("select", { "aria-label": "rows per page" });
    PAGE_SIZES.forEach(function (size) {
      var option = element("option", { value: String(size) }, size + " rows per page");
      if (size === self.size) { option.selected = true; }
      sizes.appendChild(option);
    });
    controls.appendChild(this.input);
    controls.appendChild(this.count);
    controls.appendChild(sizes);
    var timer = null;
    var delay = this.rows.length > 20000 ? 150 : 0;  // keep typing smooth on very large tables
    this.input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { self.filter(self.input.value); }, delay);
    });
    sizes.addEventListener("change", function () { self.size = Number(sizes.value); self.page = 0; self.render(); });

    var scroller = element("div", { "class": "scroller" });
    var table = element("table");
    var head = element("tr");
    this.headers = this.columns.map(function (name, index) {
      var th = element("th", { scope: "col", tabindex: "0", title: "sort by " + name }, name);
      th.addEventListener("click", function () { self.sort(index); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); self.sort(index); }
      });
      head.appendChild(th);
      return th;
    });
    var thead = element("thead");
    thead.appendChild(head);
    this.body = element("tbody");
    table.appendChild(thead);
    table.appendChild(this.body);
    scroller.appendChild(table);

    var pager = element("div", { "class": "pager" });
    this.previous = element("button", { type: "button" }, "◀ previous");
    this.next = element("button", { type: "button" }, "next ▶");
    this.where = element("span");
    this.previous.addEventListener("click", function () { self.page -= 1; self.render(); });
    this.next.addEventListener("click", function () { self.page += 1; self.render(); });
    pager.appendChild(this.previous);
    pager.appendChild(this.where);
    pager.appendChild(this.next);

    root.appendChild(controls);
    root.appendChild(scroller);
    root.appendChild(pager);
  };

  // Click once: ascending; again: descending. Missing values always go last.
  Table.prototype.sort = function (column) {
    this.direction = column === this.sortColumn ? -this.direction : 1;
    this.sortColumn = column;
    var rows = this.rows, direction = this.direction;
    this.order = this.order.slice().sort(function (i, j) {
      var a = rows[i][column], b = rows[j][column];
      if (a === null || b === null) { return a === b ? 0 : (a === null ? 1 : -1); }
      return direction * compare(a, b);
    });
    this.applyFilter();
  };

  Table.prototype.filter = function (text) {
    this.terms = text.toLowerCase().split(/\s+/).filter(Boolean);
    this.applyFilter();
  };

  Table.prototype.text = function (index) {
    if (this.texts[index] === undefined) {
      // The row's JSON text: quick to make for 100,000 rows, and it holds every value as written.
      this.texts[index] = JSON.stringify(this.rows[index]).toLowerCase();
    }
    return this.texts[index];
  };

  Table.prototype.applyFilter = function () {
    var self = this, terms = this.terms;
    this.view = terms.length === 0 ? this.order : this.order.filter(function (index) {
      var text = self.text(index);
      return terms.every(function (term) { return text.indexOf(term) >= 0; });
    });
    this.page = 0;
    this.render();
  };

  Table.prototype.render = function () {
    var pages = Math.max(1, Math.ceil(this.view.length / this.size));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    var start = this.page * this.size, stop = Math.min(start + this.size, this.view.length);
    var fragment = document.createDocumentFragment();
    for (var k = start; k < stop; k += 1) {
      var row = this.rows[this.view[k]];
      var tr = element("tr");
      for (var c = 0; c < this.columns.length; c += 1) {
        var value = row[c];
        var td = element("td", {}, show(value));
        if (typeof value === "number") { td.className = "num"; }
        if (this.columns[c] === "STATUS" && value !== null) { td.className = "status status-" + value; }
        if (td.textContent.length > 40) { td.title = td.textContent; }
        if (typeof value === "number" && show(value) !== String(value)) { td.title = String(value); }
        tr.appendChild(td);
      }
      fragment.appendChild(tr);
    }
    this.body.replaceChildren(fragment);
    var total = this.rows.length.toLocaleString("en");
    this.count.textContent = this.view.length === this.rows.length ? total + " rows"
      : this.view.length.toLocaleString("en") + " of " + total + " rows";
    this.where.textContent = this.view.length ? "rows " + (start + 1).toLocaleString("en") + "–" +
      stop.toLocaleString("en") + " (page " + (this.page + 1) + " of " + pages + ")" : "no rows match";
    this.previous.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
    var self = this;
    this.headers.forEach(function (th, index) {
      var state = index !== self.sortColumn ? "none" : (self.direction > 0 ? "ascending" : "descending");
      th.setAttribute("aria-sort", state);
    });
  };

  document.querySelectorAll(".datatable").forEach(function (root) { root.table = new Table(root); });
}());
