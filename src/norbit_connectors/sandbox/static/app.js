"use strict";
// The sandbox page: polls /api/state and posts actions as JSON. Text is always set with textContent.
(function () {
  const $ = (id) => document.getElementById(id);
  const ui = { customer: localStorage.getItem("norbit.customer") || "", channel: null, last: {}, seen: {} };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  async function post(path, payload) {
    const response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
    return data;
  }

  function changed(key, value) {
    const text = JSON.stringify(value);
    if (ui.last[key] === text) return false;
    ui.last[key] = text;
    return true;
  }

  function renderCustomer(state) {
    const list = $("customer-list");
    if (changed("customers", state.customers)) {
      list.replaceChildren(...state.customers.map((c) => el("option", { value: c.name })));
    }
    const conv = state.customer;
    if (!changed("customer", conv)) return;
    const box = $("customer-messages");
    const status = $("customer-status");
    if (!conv || !conv.messages.length) {
      box.replaceChildren(el("li", { className: "empty", textContent: ui.customer ? "Say hello." : "Enter a name and say hello." }));
    } else {
      box.replaceChildren(...conv.messages.map((m) =>
        el("li", { className: m.role }, el("span", { className: "who", textContent: m.author }), m.text)));
      box.scrollTop = box.scrollHeight;
    }
    status.hidden = true;
    status.className = "status";
    $("takeover").hidden = !(conv && conv.chatbot && !conv.taken_over && conv.status === "open");
    if (conv && conv.status === "archived") {
      status.hidden = false; status.classList.add("archived");
      status.textContent = "This conversation was archived. Writing again reopens it.";
    } else if (conv && conv.chatbot && !conv.taken_over) {
      status.hidden = false;
      status.textContent = "You are talking to the chatbot; agents see nothing until a human takes over.";
    }
  }

  function renderCard(card, channel, message) {
    const node = el("div", { className: "card" });
    if (card.title) node.append(el("h4", { textContent: card.title }));
    for (const line of card.lines) node.append(el("div", { textContent: line }));
    if (card.fields.length) node.append(el("div", { className: "fields" }, ...card.fields.map((f) => el("div", { textContent: f }))));
    for (const c of card.context) node.append(el("div", { className: "context", textContent: c }));
    const buttons = el("div", { className: "buttons" });
    for (const b of card.buttons) {
      if (b.join) {
        const button = el("button", { type: "button", className: "join", textContent: b.label, disabled: !!message.earlier });
        button.dataset.ts = message.ts;
        button.addEventListener("click", () => act(() => post("/api/agent/join", { agent: $("agent").value, channel: channel.id, ts: message.ts })));
        buttons.append(button);
      } else if (b.url) {
        buttons.append(el("a", { href: "#", textContent: b.label, onclick: (e) => { e.preventDefault(); selectChannel(channelFromCard(card)); } }));
      }
    }
    node.append(buttons);
    return node;
  }

  function channelFromCard(card) {
    for (const line of card.lines) {
      const m = line.match(/\(#([a-z0-9_-]+)\)/);
      if (m) { const found = (ui.channels || []).find((c) => c.name === m[1]); if (found) return found.id; }
    }
    return ui.channel;
  }

  function selectChannel(id) {
    ui.channel = id;
    ui.last.channelView = null;
    ui.last.channels = null;
    if (ui.state) renderSlack(ui.state);
  }

  function renderSlack(state) {
    const slack = state.slack;
    ui.channels = slack.channels;
    const agentSelect = $("agent");
    if (changed("agents", slack.agents)) {
      const keep = agentSelect.value;
      agentSelect.replaceChildren(...slack.agents.map((a) => el("option", { value: a.id, textContent: a.name })));
      if (keep) agentSelect.value = keep;
    }
    if (!ui.channel && slack.channels.length) ui.channel = slack.channels[0].id;
    const counts = slack.channels.map((c) => [c.id, c.name, c.is_private, c.is_archived, c.messages.length, c.id === ui.channel]);
    if (changed("channels", counts)) {
      $("channel-list").replaceChildren(...slack.channels.map((c) => {
        const unread = c.messages.length - (ui.seen[c.id] || 0);
        const button = el("button", {
          type: "button", className: "channel" + (c.id === ui.channel ? " active" : "") + (c.is_archived ? " archived" : ""),
        });
        button.append(el("span", { className: c.is_private ? "mark lock" : "mark", textContent: c.is_private ? "" : "#" }), c.name);
        button.dataset.id = c.id; button.dataset.name = c.name; button.dataset.archived = String(c.is_archived);
        if (unread > 0 && c.id !== ui.channel) button.append(el("span", { className: "unread", textContent: String(unread) }));
        button.addEventListener("click", () => selectChannel(c.id));
        return button;
      }));
    }
    const channel = slack.channels.find((c) => c.id === ui.channel);
    if (!changed("channelView", channel || null)) return;
    if (!channel) return;
    ui.seen[channel.id] = channel.messages.length;
    $("channel-title").replaceChildren(el("span", { className: channel.is_private ? "mark lock" : "mark", textContent: channel.is_private ? "" : "#" }),
      channel.name + (channel.is_archived ? " (archived)" : ""));
    $("channel-title").dataset.archived = String(channel.is_archived);
    $("channel-members").textContent = "Members: " + channel.member_names.join(", ");
    const box = $("slack-messages");
    box.replaceChildren(...channel.messages.map((m) => {
      const item = el("li", { className: "msg" + (m.earlier ? " earlier" : "") },
        el("span", { className: "author", textContent: m.author }),
        m.from_app ? el("span", { className: "app-tag", textContent: "APP" }) : null,
        m.card ? null : el("span", { className: "text", textContent: m.text }));
      if (m.card) item.append(renderCard(m.card, channel, m));
      return item;
    }));
    box.scrollTop = box.scrollHeight;
    const notes = (slack.notes || []).filter((n) => n.channel === channel.id).slice(-3);
    $("notes").replaceChildren(...notes.map((n) => el("div", { className: "note", textContent: "Only visible to you: " + n.text })));
  }

  async function refresh() {
    try {
      const response = await fetch("/api/state?customer=" + encodeURIComponent(ui.customer), { cache: "no-store" });
      const state = await response.json();
      ui.state = state;
      if (changed("settings", state.settings)) $("chatbot").checked = state.settings.chatbot;
      if (changed("departments", state.departments)) {
        $("department").replaceChildren(el("option", { value: "", textContent: "Any department" }),
          ...state.departments.map((d) => el("option", { value: d.id, textContent: d.name })));
      }
      if (state.mode === "slack") {
        $("slack-pane").hidden = true;
        $("mode-note").textContent = "Bridged to your Slack workspace: agents answer in Slack.";
      } else {
        $("mode-note").textContent = "Slack is emulated on this page; the hub, store and connector are real.";
        renderSlack(state);
      }
      renderCustomer(state);
    } catch (err) {
      $("customer-error").textContent = "The sandbox is not answering: " + err.message;
      return;
    }
    if ($("customer-error").textContent.startsWith("The sandbox is not answering")) $("customer-error").textContent = "";
  }

  async function act(fn, errorBox) {
    const box = $(errorBox || "slack-error");
    box.textContent = "";
    try { await fn(); } catch (err) { box.textContent = err.message; }
    await refresh();
  }

  $("customer-name").value = ui.customer;
  $("customer-name").addEventListener("change", () => {
    ui.customer = $("customer-name").value.trim();
    localStorage.setItem("norbit.customer", ui.customer);
    ui.last.customer = null;
    refresh();
  });
  $("customer-pick").addEventListener("submit", (e) => e.preventDefault());
  $("customer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("customer-name").value.trim();
    const text = $("customer-text").value;
    if (!name) { $("customer-error").textContent = "Enter your name first."; return; }
    if (!text.trim()) return;
    ui.customer = name;
    localStorage.setItem("norbit.customer", name);
    $("customer-text").value = "";
    act(() => post("/api/customer/message", { customer: name, text, department: $("department").value || null }), "customer-error");
  });
  $("takeover").addEventListener("click", () => act(() => post("/api/customer/takeover", { customer: ui.customer }), "customer-error"));
  $("chatbot").addEventListener("change", () => act(() => post("/api/chatbot", { enabled: $("chatbot").checked }), "customer-error"));
  $("agent-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("agent-text").value;
    if (!text.trim() || !ui.channel) return;
    $("agent-text").value = "";
    act(async () => {
      const answer = await post("/api/agent/message", { agent: $("agent").value, channel: ui.channel, text });
      ui.last.channelView = null;
      return answer;
    });
  });
  refresh();
  setInterval(refresh, 500);
})();
