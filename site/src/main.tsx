// Entry point: read the runtime config, then render the dashboard.
import { render } from "solid-js/web";
import "./index.css";
import { App } from "./App";
import { loadConfig } from "./config";

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
const config = await loadConfig();
render(() => <App config={config} />, root);
