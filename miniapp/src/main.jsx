import React, { Component } from "react";
import { createRoot } from "react-dom/client";
import "zmp-ui/zaui.css";
import "./app.css";
import { MiniApp } from "./app.jsx";

/** Whatever goes wrong while drawing, the student gets words and a way back, not a blank. */
class Fallback extends Component {
  state = { broken: false };

  static getDerivedStateFromError() {
    return { broken: true };
  }

  render() {
    if (!this.state.broken) return this.props.children;
    return (
      <main className="fallback" role="alert">
        <p>Ứng dụng gặp sự cố khi hiển thị. Vui lòng tải lại.</p>
        <button type="button" data-action="reload" onClick={() => window.location.reload()}>
          Tải lại
        </button>
      </main>
    );
  }
}

createRoot(document.getElementById("app")).render(
  <Fallback>
    <MiniApp />
  </Fallback>,
);
