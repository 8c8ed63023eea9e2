//! The testkit servers, exercised over the wire.

use std::net::Ipv4Addr;
use std::time::Duration;

use certhub_testkit::{Http01Server, HttpReply, TestDns, mgmt_router};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn request(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut msg = Message::query();
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    msg.to_vec().unwrap()
}

async fn udp_query(dns: &TestDns, name: &str, rtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&request(name, rtype), dns.addr())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn tcp_query(dns: &TestDns, name: &str, rtype: RecordType) -> Message {
    let mut s = TcpStream::connect(dns.addr()).await.unwrap();
    let req = request(name, rtype);
    s.write_u16(req.len() as u16).await.unwrap();
    s.write_all(&req).await.unwrap();
    let len = s.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn txts(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn dns_answers_over_udp_and_tcp() {
    let dns = TestDns::start().await;
    dns.set_txt("_acme-challenge.x.test", vec!["v1".into()]);
    dns.set_a("x.test", Ipv4Addr::new(192, 0, 2, 1));
    let m = udp_query(&dns, "_acme-challenge.x.test.", RecordType::TXT).await;
    assert_eq!(txts(&m), vec!["v1"]);
    let m = tcp_query(&dns, "X.TEST.", RecordType::A).await;
    assert!(matches!(m.answers[0].data, RData::A(a) if a.0 == Ipv4Addr::new(192, 0, 2, 1)));
    dns.clear_txt("_acme-challenge.x.test");
    let m = udp_query(&dns, "_acme-challenge.x.test.", RecordType::TXT).await;
    assert!(m.answers.is_empty());
    dns.set_servfail("x.test");
    let m = udp_query(&dns, "x.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn mgmt_api_is_pebble_compatible() {
    let dns = TestDns::start().await;
    let http = Http01Server::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mgmt = listener.local_addr().unwrap();
    let app = mgmt_router(dns.clone(), Some(http.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        let req = client.post(format!("http://{mgmt}{path}")).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };

    let st = post(
        "/set-txt",
        serde_json::json!({"host": "_acme-challenge.y.test.", "value": "abc"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        txts(&udp_query(&dns, "_acme-challenge.y.test.", RecordType::TXT).await),
        vec!["abc"]
    );
    assert_eq!(
        post(
            "/clear-txt",
            serde_json::json!({"host": "_acme-challenge.y.test."})
        )
        .await,
        200
    );
    assert!(
        udp_query(&dns, "_acme-challenge.y.test.", RecordType::TXT)
            .await
            .answers
            .is_empty()
    );

    assert_eq!(
        post(
            "/add-a",
            serde_json::json!({"host": "y.test.", "addresses": ["127.0.0.2"]})
        )
        .await,
        200
    );
    let m = udp_query(&dns, "y.test.", RecordType::A).await;
    assert!(matches!(m.answers[0].data, RData::A(a) if a.0 == Ipv4Addr::new(127, 0, 0, 2)));

    let policies =
        serde_json::json!({"host": "y.test.", "policies": [{"tag": "issue", "value": "ca.test"}]});
    assert_eq!(post("/set-caa", policies).await, 200);
    let m = udp_query(&dns, "y.test.", RecordType::CAA).await;
    assert!(
        matches!(&m.answers[0].data, RData::CAA(c) if c.tag == "issue" && c.value == b"ca.test")
    );
    assert_eq!(
        post("/clear-caa", serde_json::json!({"host": "y.test."})).await,
        200
    );
    assert!(
        udp_query(&dns, "y.test.", RecordType::CAA)
            .await
            .answers
            .is_empty()
    );

    assert_eq!(
        post("/set-txt", serde_json::json!({"value": "no host"})).await,
        400
    );

    assert_eq!(
        post(
            "/add-http01",
            serde_json::json!({"token": "t1", "content": "t1.ka"})
        )
        .await,
        200
    );
    let body = client
        .get(format!(
            "http://{}/.well-known/acme-challenge/t1",
            http.addr()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "t1.ka");
}

#[tokio::test]
async fn http_server_replies() {
    let http = Http01Server::start().await;
    http.set_reply("/s", HttpReply::Status(503, "busy".into()));
    http.set_reply("/r", HttpReply::Redirect("/s".into()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |p: &str| client.get(format!("http://{}{p}", http.addr())).send();
    assert_eq!(get("/s").await.unwrap().status().as_u16(), 503);
    let r = get("/r").await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], "/s");
    assert_eq!(get("/missing").await.unwrap().status().as_u16(), 404);
}
