// What a reader of one built page sees, measured in the browser after the page (and MathJax) has
// loaded: tests/book_checks.py evaluates this function in headless Chromium and turns its report
// into a list of problems. Folded content (hide-output toggles, <details>, the exercises' solutions)
// is opened first: a reader who opens it sees it too; whether each solution was folded before, and
// shown after its toggle was clicked, is measured on the way. Returns a JSON-able object; every list
// names the element it is about.
async (options) => {
  const TOLERANCE = 1;  // px: sub-pixel rounding is no overflow
  // The window's width as asked for: a phone's layout viewport may grow to fit what sticks out.
  const windowWidth = options.width || window.innerWidth;
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;

  const visible = (element) => element.getClientRects().length > 0 && getComputedStyle(element).visibility !== "hidden";
  const settle = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  // An admonition's content: what follows its title, shown when some of it is visible and has a height.
  const contentShown = (admonition) => [...admonition.children].some((child) =>
    !child.classList.contains("admonition-title") && visible(child) && child.getBoundingClientRect().height > 0);
  const titleOf = (admonition) => (admonition.querySelector(".admonition-title") || admonition).innerText.trim().slice(0, 60);

  // Exercises (sphinx-exercise): each exercise shown, each solution folded before the toggles are clicked.
  const exercises = [...document.querySelectorAll(".admonition.exercise")].map((exercise) => ({
    id: exercise.id, title: titleOf(exercise), shown: visible(exercise) && contentShown(exercise)}));
  const solutions = [...document.querySelectorAll(".admonition.solution")].map((solution) => ({
    element: solution, id: solution.id, title: titleOf(solution), foldedAtFirst: !contentShown(solution),
    toggle: Boolean(solution.querySelector(":scope > .admonition-title button.toggle-button"))}));

  // Open what is folded, by clicking its toggle as a reader would, then let the layout settle.
  for (const details of document.querySelectorAll("details")) details.open = true;
  for (const button of document.querySelectorAll("button.toggle-button")) {
    const target = document.getElementById(button.dataset.target);
    if (target && target.classList.contains("toggle-hidden")) button.click();
  }
  await settle();
  for (const solution of solutions) {
    solution.shownAfterClick = contentShown(solution.element);
    delete solution.element;
  }
  const snippet = (element) => (element.innerText || element.getAttribute("alt") || element.getAttribute("src") || "")
    .replace(/\s+/g, " ").trim().slice(0, 60);
  const describe = (element) => {
    const classes = [...element.classList].slice(0, 3).join(".");
    const cell = element.closest(".cell");
    const index = cell ? [...document.querySelectorAll(".cell")].indexOf(cell) : -1;
    return {tag: element.tagName.toLowerCase() + (classes ? "." + classes : ""), cell: index, text: snippet(element)};
  };
  const scrollContainer = (element) => {
    for (let node = element.parentElement; node && node !== document.body; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === "auto" || overflow === "scroll" || overflow === "hidden" || overflow === "clip") return node;
    }
    return null;
  };

  // (a) Nothing wider than its column: the element itself, the box that would scroll it sideways,
  // and its right edge against the article's.
  const WIDE = ["table", "mjx-container[display='true']", "div.math", "figure", "img", "pre", "div.highlight",
                ".cell_output", ".output", "svg:not(mjx-container svg)"];
  const articleRight = article.getBoundingClientRect().right;
  const overflows = [];
  const reported = new Set();
  for (const element of article.querySelectorAll(WIDE.join(","))) {
    if (!visible(element) || reported.has(element)) continue;
    const own = element.scrollWidth - element.clientWidth;
    const container = scrollContainer(element);
    const inContainer = container && article.contains(container) ? container.scrollWidth - container.clientWidth : 0;
    const beyond = element.getBoundingClientRect().right - articleRight;
    const excess = Math.max(element.clientWidth ? own : 0, inContainer, beyond);
    if (excess > TOLERANCE) {
      reported.add(element);
      if (container) reported.add(container);
      overflows.push({...describe(element), px: Math.round(excess),
                      how: own > TOLERANCE ? "scrolls inside itself" : inContainer > TOLERANCE ?
                        `scrolls inside ${container.tagName.toLowerCase()}.${[...container.classList].join(".")}` :
                        "sticks out of the column"});
    }
  }
  const pageWidth = document.documentElement.scrollWidth;
  // What makes the page scroll sideways: elements that stick out of the window although their
  // parent does not (the first few; their children stick out with them).
  const beyondWindow = [];
  if (pageWidth > windowWidth + TOLERANCE) {
    for (const element of document.body.querySelectorAll("*")) {
      const right = element.getBoundingClientRect().right;
      const parent = element.parentElement;
      if (element.closest(".skip-link, mjx-container")) continue;  // hidden until focused; maths: reported above
      if (element.getClientRects().length && right > windowWidth + TOLERANCE && parent &&
          parent.getBoundingClientRect().right <= windowWidth + TOLERANCE && !reported.has(element)) {
        beyondWindow.push({...describe(element), px: Math.round(right - windowWidth)});
        if (beyondWindow.length >= 5) break;
      }
    }
  }

  // (b) Visible text: all of the article's (prose, outputs, code), and apart, the code cells' inputs.
  const text = article.innerText;
  const inputs = [...article.querySelectorAll(".cell_input")].map((element) => element.innerText).join("\n");

  // (c) Links: every <a href> of the page (navigation included); the test resolves them on disk.
  const links = [...document.querySelectorAll("a[href]")].map((a) => ({
    href: a.getAttribute("href"), url: a.href, classes: a.className, text: snippet(a),
  }));
  const ids = [...document.querySelectorAll("[id]")].map((element) => element.id);
  const images = [...document.querySelectorAll("img")].map((img) => ({
    src: img.getAttribute("src"), url: img.currentSrc || img.src, complete: img.complete, naturalWidth: img.naturalWidth,
    decoded: img.complete && img.naturalWidth > 0,
  }));

  // (d) Output boxes with nothing in them.
  const empty = [];
  // (the copy button that sphinx-copybutton puts on every <pre> is no content)
  const isEmpty = (element) => {
    const buttons = [...element.querySelectorAll("button")].map((button) => button.innerText).join("");
    return !element.innerText.replace(buttons, "").trim() &&
      !element.querySelector("img, canvas, video, iframe, mjx-container, svg:not(button svg)");
  };
  for (const output of article.querySelectorAll(".cell_output")) {
    if (!visible(output)) continue;
    if (isEmpty(output)) { empty.push(describe(output)); continue; }
    for (const part of output.querySelectorAll(".output")) {
      if (visible(part) && isEmpty(part)) empty.push(describe(part));
    }
  }

  // (e) Figures in outputs at their size: rendered width against the size the figure was made at
  // (its width attribute if it has one, e.g. a retina image, otherwise its natural width).
  const column = article.clientWidth;
  const figures = [...article.querySelectorAll(".cell_output img")].filter(visible).map((img) => ({
    ...describe(img), src: img.getAttribute("src"), natural: img.naturalWidth,
    intended: Number(img.getAttribute("width")) || img.naturalWidth,
    rendered: Math.round(img.getBoundingClientRect().width), column,
  }));

  // MathJax: every maths element typeset (Sphinx's span.math / div.math, MathJax's mjx-container).
  const maths = document.querySelectorAll(".math").length;
  const typeset = document.querySelectorAll("mjx-container").length;
  return {width: window.innerWidth, pageWidth, beyondWindow, column, overflows, text, inputs, links, ids, images, empty, figures,
          exercises, solutions, maths, typeset, title: document.title, html: document.documentElement.outerHTML};
}
