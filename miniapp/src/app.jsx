import React, { useEffect, useRef, useState } from "react";
import { Route, Routes } from "react-router-dom";
import { App, Button, Input, Page, ZMPRouter } from "zmp-ui";
import { lookup, message, stats } from "./api.js";
import { Histogram } from "./chart.jsx";
import { count, score, topPercent, vietnamTime } from "./format.js";
import { followOA, hostAvailable, inZalo, oaLink, openChat } from "./host.js";
import { normalize } from "./sbd.js";

const OA_ID = __OA_ID__;
const SUBJECTS = __SUBJECTS__;
const COMBINATIONS = __COMBINATIONS__;

const subjectName = (key) => SUBJECTS[key] || key;

/** The whole Mini App: one page, routed the way the host expects (see host.js). */
export function MiniApp() {
  return (
    <App>
      <ZMPRouter memoryRouter={!inZalo}>
        <Routes>
          <Route path="*" element={<LookupPage />} />
        </Routes>
      </ZMPRouter>
    </App>
  );
}

function LookupPage() {
  const [text, setText] = useState("");
  const [fieldError, setFieldError] = useState("");
  const [state, setState] = useState({ phase: "idle" });
  const asked = useRef(0); // only the latest lookup may draw its answer

  async function run(sbd) {
    const ticket = ++asked.current;
    setState({ phase: "loading", sbd });
    const answer = await lookup(sbd);
    if (ticket === asked.current) setState({ phase: "answered", sbd, answer });
  }

  function submit(event) {
    event.preventDefault();
    const sbd = normalize(text);
    if (!sbd) {
      setFieldError(message("invalid_sbd"));
      return;
    }
    setFieldError("");
    setText(sbd);
    run(sbd);
  }

  const loading = state.phase === "loading";
  return (
    <Page className="page">
      <header className="intro">
        <h1>Tra cứu điểm thi THPT</h1>
        <p>Nhập số báo danh in trên giấy báo dự thi (8 chữ số).</p>
      </header>
      <form className="lookup" onSubmit={submit} noValidate>
        <label htmlFor="sbd" className="field-label">
          Số báo danh
        </label>
        <Input
          id="sbd"
          name="sbd"
          inputMode="numeric"
          autoComplete="off"
          enterKeyHint="search"
          placeholder="Ví dụ: 01000123"
          maxLength={24}
          value={text}
          status={fieldError ? "error" : undefined}
          aria-invalid={fieldError ? "true" : undefined}
          aria-describedby={fieldError ? "sbd-error" : undefined}
          onChange={(event) => setText(event.target.value)}
        />
        {fieldError && (
          <p id="sbd-error" className="field-error" role="alert" data-error="invalid_sbd">
            {fieldError}
          </p>
        )}
        <Button htmlType="submit" fullWidth loading={loading} disabled={loading} data-action="lookup">
          Tra cứu
        </Button>
      </form>
      <section className="answer" aria-live="polite" aria-busy={loading}>
        {loading && <p className="loading">Đang tra cứu số báo danh {state.sbd}…</p>}
        {state.phase === "answered" && (
          <Answer sbd={state.sbd} answer={state.answer} retry={() => run(state.sbd)} />
        )}
      </section>
    </Page>
  );
}

function Answer({ sbd, answer, retry }) {
  if (answer.kind === "found") return <Result data={answer.data} />;
  if (answer.kind === "not_published") return <Embargo sbd={sbd} answer={answer} />;
  return (
    <div className="problem" role="alert" data-screen="error" data-error={answer.kind}>
      <p>{answer.message}</p>
      {answer.kind !== "not_found" && answer.kind !== "invalid_sbd" && (
        <Button fullWidth onClick={retry} data-action="retry">
          Thử lại
        </Button>
      )}
    </div>
  );
}

/** "hạng 1.204 / 26.880 trong tỉnh", "top 4,5% cả nước", as the web pages say them; the
 * nation's line only when it says more than the province's. */
function rankLines(rank) {
  if (!rank) return [];
  const lines = [];
  const province = rank.province || {};
  if (province.of) {
    lines.push(`hạng ${count(province.higher + 1)} / ${count(province.of)} trong tỉnh`);
  }
  const nation = rank.nation || {};
  if (nation.of && (nation.source === "national" || nation.of > (province.of || 0))) {
    lines.push(`${topPercent(nation)} cả nước`);
  }
  return lines;
}

/** What the API says of one key beyond its score: ranks and last year's equivalent. */
function Standing({ rank, previous, id }) {
  const lines = rankLines(rank);
  const equivalents = (previous && previous.equivalents) || {};
  if (id in equivalents) {
    lines.push(`năm ${previous.year} tương đương ${score(equivalents[id])} điểm`);
  }
  if (!lines.length) return null;
  return (
    <span className="rank" data-standing={id}>
      {lines.map((line) => (
        <span key={line}>{line}</span>
      ))}
    </span>
  );
}

/** The phổ điểm the API has for this candidate: the ministry's national figures when they
 * are imported, else the candidate's province in the served snapshot; null when neither. */
function useDistributions(data) {
  const [found, setFound] = useState(null);
  useEffect(() => {
    let live = true;
    (async () => {
      let among = "cả nước";
      let doc = await stats(data.year, "national");
      if (!doc && data.province) {
        among = data.province.name;
        doc = await stats(data.year, data.province.code);
      }
      if (live && doc) setFound({ among, distributions: doc.distributions });
    })();
    return () => {
      live = false;
    };
  }, [data]);
  return found;
}

function Chart({ found, id, value }) {
  const dist = found && found.distributions[id];
  if (!dist || !Array.isArray(dist.histogram) || !dist.histogram.length) return null;
  const name = subjectName(id);
  return (
    <figure data-chart={id}>
      <Histogram
        histogram={dist.histogram}
        mark={value}
        label={`Phổ điểm môn ${name} ${found.among}: ${count(dist.count)} thí sinh; điểm của bạn ${score(value)}`}
      />
      <figcaption>
        Phổ điểm {name} {found.among}: {count(dist.count)} thí sinh, trung bình {score(dist.mean)};
        cột màu cam là điểm của bạn.
      </figcaption>
    </figure>
  );
}

function Result({ data }) {
  const ranks = data.ranks || {};
  const language = data.foreign_language;
  const combos = Object.entries(data.combinations || {});
  const previous = data.previous_year;
  const distributions = useDistributions(data);
  return (
    <div className="result" data-screen="result">
      <h2>Thí sinh {data.sbd}</h2>
      <p className="meta">
        {data.province ? `${data.province.name} · ` : ""}Kỳ thi năm {data.year}
      </p>
      <h3>Điểm từng môn</h3>
      <ul className="rows">
        {Object.entries(data.scores).map(([key, value]) => (
          <li key={key} className="subject" data-subject={key}>
            <span className="label">
              <span className="name">{subjectName(key)}</span>
              {key === "ngoai_ngu" && language && <span className="note"> ({language.name})</span>}
              <Standing rank={ranks[key]} previous={previous} id={key} />
            </span>
            <span className="score">{score(value)}</span>
            <Chart found={distributions} id={key} value={value} />
          </li>
        ))}
      </ul>
      {combos.length > 0 ? (
        <>
          <h3>Tổng điểm theo tổ hợp</h3>
          <ul className="rows">
            {combos.map(([code, total]) => (
              <li key={code} data-combination={code}>
                <span className="label">
                  <span className="name">{code}</span>
                  <span className="note">
                    {" "}
                    ({(COMBINATIONS[code] || []).map(subjectName).join(", ")})
                  </span>
                  <Standing rank={ranks[code]} previous={previous} id={code} />
                </span>
                <span className="score">{score(total)}</span>
              </li>
            ))}
          </ul>
        </>
      ) : (
        <p className="hint">Chưa đủ môn để tính tổng điểm tổ hợp xét tuyển.</p>
      )}
    </div>
  );
}

function Embargo({ sbd, answer }) {
  const [step, setStep] = useState("idle"); // idle | explain | working | done | failed
  const chatMessage = `Đăng ký nhận điểm thi, số báo danh ${sbd}`;

  async function go() {
    setStep("working");
    try {
      await followOA(OA_ID);
    } catch {
      // Declining to follow does not stop the chat: the student's own message is what counts.
    }
    try {
      await openChat(OA_ID, chatMessage);
      setStep("done");
    } catch {
      setStep("failed");
    }
  }

  return (
    <div className="embargo" data-screen="embargo">
      <h2>Điểm thi chưa được công bố</h2>
      {answer.releaseAt ? (
        <p>
          Điểm sẽ có từ <strong data-release>{vietnamTime(answer.releaseAt)}</strong> (giờ Việt Nam).
        </p>
      ) : (
        <p>{answer.message}</p>
      )}
      {OA_ID && hostAvailable && step === "idle" && (
        <Button fullWidth onClick={() => setStep("explain")} data-action="notify">
          Nhận điểm qua Zalo
        </Button>
      )}
      {OA_ID && !hostAvailable && (
        <>
          <p className="hint">Nhắn số báo danh {sbd} cho Official Account của Sở để nhận điểm khi có.</p>
          <a className="link-button" data-action="notify" href={oaLink(OA_ID)} target="_blank" rel="noopener noreferrer">
            Nhận điểm qua Zalo
          </a>
        </>
      )}
      {(step === "explain" || step === "working") && (
        <div className="explain" role="dialog" aria-labelledby="notify-title" data-dialog="notify">
          <h3 id="notify-title">Nhận điểm qua Zalo</h3>
          <p>
            Ứng dụng sẽ mời bạn quan tâm Official Account của Sở, rồi mở khung chat với tin nhắn có sẵn
            số báo danh {sbd}. Bạn bấm Gửi để đăng ký; khi điểm được công bố, Official Account sẽ nhắn
            điểm cho bạn. Bạn có thể bỏ quan tâm bất cứ lúc nào.
          </p>
          <Button fullWidth onClick={go} loading={step === "working"} disabled={step === "working"} data-action="notify-continue">
            Tiếp tục
          </Button>
          <Button fullWidth variant="tertiary" onClick={() => setStep("idle")} data-action="notify-cancel">
            Để sau
          </Button>
        </div>
      )}
      {step === "done" && (
        <p className="notice" role="status" data-notify="done">
          Đã mở khung chat với Official Account. Bấm Gửi để đăng ký nhận điểm.
        </p>
      )}
      {step === "failed" && (
        <p className="problem" role="alert" data-notify="failed">
          Chưa mở được khung chat Zalo. Hãy mở{" "}
          <a href={oaLink(OA_ID)} target="_blank" rel="noopener noreferrer">
            trang Official Account của Sở
          </a>{" "}
          và nhắn: “{chatMessage}”.
        </p>
      )}
    </div>
  );
}
