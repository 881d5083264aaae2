// Sortable tables (click a header; again to reverse) and zoomable figures: no library, works offline.
function sortTable(th) {
  const table = th.closest("table"), body = table.tBodies[0], column = th.cellIndex;
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  for (const other of th.parentNode.children) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const key = (row) => {
    const cell = row.cells[column], value = cell.dataset.sort ?? cell.textContent.trim();
    const number = Number(value);
    return value !== "" && !isNaN(number) ? number : value.toLowerCase();
  };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a), y = key(b);
    const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
    return ascending ? order : -order;
  });
  body.append(...rows);
}
document.addEventListener("click", (event) => {
  const th = event.target.closest("table.sortable th");
  if (th) sortTable(th);
  const image = event.target.closest(".zoom img");
  if (image) image.classList.toggle("full");
});
