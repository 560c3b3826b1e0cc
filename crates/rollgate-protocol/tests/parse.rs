//! Answers as real servers write them, each protocol; malformed and cut
//! answers are typed errors; random bytes and every prefix of a real answer
//! never panic.

use proptest::prelude::*;
use rollgate_protocol::{Format, Output, Pointers, Protocol, ProtocolError, TensorData, parse_answer};

fn parse(protocol: Protocol, body: &str) -> Result<Output, ProtocolError> {
    parse_answer(&Format::new(protocol), body.as_bytes())
}

fn chat(body: &str) -> rollgate_protocol::Chat {
    match parse(Protocol::OpenaiChat, body).unwrap() {
        Output::Chat(chat) => chat,
        other => panic!("{other:?}"),
    }
}

/// As vLLM answers /v1/chat/completions.
const VLLM_CHAT: &str = r#"{"id":"chatcmpl-9f1c","object":"chat.completion","created":1732700000,"model":"llama-3-8b","system_fingerprint":"fp_44709d6fcb",
  "choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France.","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],
  "usage":{"prompt_tokens":14,"total_tokens":22,"completion_tokens":8}}"#;

/// A tool call, as OpenAI's API answers it.
const TOOL_CALL: &str = r#"{"id":"chatcmpl-abc","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",
  "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
  "function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"unit\": \"c\"}"}}]},"finish_reason":"tool_calls"}],
  "usage":{"prompt_tokens":80,"completion_tokens":17,"total_tokens":97}}"#;

/// A streamed chat answer (TGI / vLLM / OpenAI all write this shape), usage in the last chunk.
const STREAM: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo!\"},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
data: [DONE]\n\n";

#[test]
fn a_chat_answer_keeps_text_finish_reason_and_usage_and_drops_ids() {
    let c = chat(VLLM_CHAT);
    assert_eq!(c.model.as_deref(), Some("llama-3-8b"));
    assert_eq!(c.choices[0].text, "Paris is the capital of France.");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!((c.usage.unwrap().prompt_tokens, c.usage.unwrap().completion_tokens), (14, 8));
    // Two answers that differ only in id, created and fingerprint are the same output.
    let other =
        VLLM_CHAT.replace("chatcmpl-9f1c", "chatcmpl-0000").replace("1732700000", "1").replace("fp_44709d6fcb", "fp_x");
    assert_eq!(chat(&other), c);
}

#[test]
fn tool_calls_are_kept_with_their_arguments() {
    let c = chat(TOOL_CALL);
    assert_eq!(c.choices[0].text, "");
    assert_eq!(c.choices[0].tool_calls[0].name, "get_weather");
    assert_eq!(c.choices[0].tool_calls[0].arguments, r#"{"city": "Paris", "unit": "c"}"#);
}

#[test]
fn a_streamed_answer_is_reassembled_from_its_events() {
    let c = chat(STREAM);
    assert_eq!(c.choices[0].text, "Hello!");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.usage.unwrap().completion_tokens, 2);
    // CRLF line ends and comments are server-sent events too.
    let crlf = format!(": keep-alive\r\n\r\n{}", STREAM.replace("\n\n", "\r\n\r\n"));
    assert_eq!(chat(&crlf), c);
}

#[test]
fn streamed_tool_calls_are_put_back_together() {
    let events = [
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
    ];
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect::<String>() + "data: [DONE]\n\n";
    let c = chat(&body);
    assert_eq!(c.choices[0].tool_calls.len(), 1);
    assert_eq!(c.choices[0].tool_calls[0].name, "get_weather");
    assert_eq!(c.choices[0].tool_calls[0].arguments, r#"{"city": "Paris"}"#);
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn completions_and_their_stream_read_the_text() {
    let whole = r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" world","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
    assert_eq!(chat(whole).choices[0].text, " world");
    let stream = "data: {\"choices\":[{\"text\":\" wor\",\"index\":0,\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"text\":\"ld\",\"index\":0,\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n";
    assert_eq!(chat(stream).choices[0].text, " world");
}

#[test]
fn a_stream_cut_before_its_end_is_truncated() {
    let cut = &STREAM[..STREAM.find("lo!").unwrap()];
    assert!(
        matches!(parse(Protocol::OpenaiChat, cut), Err(ProtocolError::Truncated(_))),
        "{:?}",
        parse(Protocol::OpenaiChat, cut)
    );
    // Cut after the finish reason but before [DONE]: whole enough.
    let before_done = &STREAM[..STREAM.find("data: [DONE]").unwrap()];
    assert_eq!(chat(before_done).choices[0].text, "Hello!");
}

#[test]
fn kserve_v2_outputs_are_tensors_with_checked_shapes() {
    let body = r#"{"model_name":"fraud","model_version":"2","id":"r-1","outputs":[
        {"name":"probabilities","shape":[2,3],"datatype":"FP32","data":[0.1,0.7,0.2,0.6,0.3,0.1]},
        {"name":"label","shape":[2],"datatype":"BYTES","data":["approve","review"]}]}"#;
    let Output::Tensors { tensors } = parse(Protocol::KserveV2, body).unwrap() else { panic!() };
    assert_eq!(tensors[0].shape, [2, 3]);
    assert_eq!(tensors[0].data, TensorData::Numbers(vec![0.1, 0.7, 0.2, 0.6, 0.3, 0.1]));
    assert_eq!(tensors[1].data, TensorData::Strings(vec!["approve".into(), "review".into()]));
    let wrong = body.replace("[2,3]", "[2,4]");
    assert!(matches!(parse(Protocol::KserveV2, &wrong), Err(ProtocolError::Shape { expected: 8, found: 6, .. })));
    assert!(matches!(parse(Protocol::KserveV2, r#"{"outputs":[{"name":"x"}]}"#), Err(ProtocolError::Missing(_))));
}

#[test]
fn tf_serving_predictions_and_outputs_accept_nan_and_infinity() {
    let rows = r#"{"predictions": [[0.5, NaN], [Infinity, -Infinity]]}"#;
    let Output::Tensors { tensors } = parse(Protocol::TfServing, rows).unwrap() else { panic!() };
    assert_eq!(tensors[0].shape, [2, 2]);
    let TensorData::Numbers(values) = &tensors[0].data else { panic!() };
    assert!(values[1].is_nan() && values[2] == f64::INFINITY && values[3] == f64::NEG_INFINITY);
    let named =
        r#"{"predictions": [{"scores": [0.9, 0.1], "classes": "spam"}, {"scores": [0.2, 0.8], "classes": "ham"}]}"#;
    let Output::Tensors { tensors } = parse(Protocol::TfServing, named).unwrap() else { panic!() };
    let classes = tensors.iter().find(|t| t.name == "classes").unwrap();
    assert_eq!(classes.data, TensorData::Strings(vec!["spam".into(), "ham".into()]));
    assert_eq!(tensors.iter().find(|t| t.name == "scores").unwrap().shape, [2, 2]);
    let columnar = r#"{"outputs": {"y": [1.0, 2.0, 3.0]}}"#;
    let Output::Tensors { tensors } = parse(Protocol::TfServing, columnar).unwrap() else { panic!() };
    assert_eq!((tensors[0].name.as_str(), tensors[0].shape.as_slice()), ("y", &[3][..]));
    let ragged = r#"{"predictions": [[1, 2], [3]]}"#;
    assert!(matches!(parse(Protocol::TfServing, ragged), Err(ProtocolError::Shape { .. })));
}

#[test]
fn generic_json_is_read_through_pointers() {
    let pointers = Pointers { label: Some("/result/decision".into()), score: Some("/result/p".into()), text: None };
    let format = Format { protocol: Protocol::Json, pointers };
    let Output::Picked(p) = parse_answer(&format, br#"{"result":{"decision":"deny","p":0.93},"trace":"x"}"#).unwrap()
    else {
        panic!()
    };
    assert_eq!((p.label.as_deref(), p.score), (Some("deny"), Some(0.93)));
    let missing = parse_answer(&format, br#"{"result":{}}"#);
    assert_eq!(missing, Err(ProtocolError::Missing("/result/decision".into())));
}

#[test]
fn malformed_answers_are_typed_errors_with_their_place() {
    match parse(Protocol::KserveV2, "{\"outputs\": [1,\n 2,, 3]}") {
        Err(ProtocolError::NotJson { line: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse(Protocol::KserveV2, r#"{"outputs": [{"name": "a", "sh"#), Err(ProtocolError::Truncated(_))));
    assert!(matches!(
        parse(Protocol::OpenaiChat, r#"{"error": {"message": "overloaded"}}"#),
        Err(ProtocolError::Missing(_))
    ));
    assert!(matches!(parse(Protocol::OpenaiChat, "data: {not json}\n\n"), Err(ProtocolError::BadEvent(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..4) {
        let protocol = [Protocol::OpenaiChat, Protocol::KserveV2, Protocol::TfServing, Protocol::Json][which];
        let _ = parse_answer(&Format::new(protocol), &body);
    }

    #[test]
    fn every_prefix_of_a_real_answer_is_an_answer_or_an_error(cut in 0usize..2000, which in 0usize..3) {
        let (protocol, body) = [
            (Protocol::OpenaiChat, STREAM),
            (Protocol::OpenaiChat, TOOL_CALL),
            (Protocol::TfServing, r#"{"predictions": [[0.5, NaN], [Infinity, -Infinity]]}"#),
        ][which];
        let prefix = &body.as_bytes()[..cut.min(body.len())];
        let _ = parse_answer(&Format::new(protocol), prefix);
    }
}
