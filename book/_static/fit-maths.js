// A display equation wider than the text column (on a phone, most long ones) is typeset smaller
// until it fits, down to 60% of its size: MathJax 3 cannot break lines, and a reader should not
// have to scroll an equation sideways. Below 60% it scrolls; its author should split it into
// aligned lines. Jupyter Book includes _static/*.js in every page.
(function () {
  const SMALLEST = 0.6;
  function fit() {
    for (const maths of document.querySelectorAll("mjx-container[display='true']")) {
      maths.style.fontSize = "";
      const column = maths.clientWidth;
      const width = maths.scrollWidth;
      if (column > 0 && width > column + 1) {
        const scale = Math.max(SMALLEST, (column - 2) / width);
        const current = parseFloat(getComputedStyle(maths).fontSize);
        maths.style.fontSize = `${current * scale}px`;
      }
    }
  }
  function whenTypeset() {
    const startup = window.MathJax && window.MathJax.startup;
    if (startup && startup.promise) {
      startup.promise.then(fit);
    }
  }
  window.addEventListener("load", whenTypeset);
  let resizing;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(fit, 200);
  });
})();
