//! End to end: the `remo` client → remod's embedded HTTP front door,
//! quick-start style (`remod serve --http ADDR --dir DIR`, first run).

use crate::common;

use common::*;

#[test]
fn remo_over_embedded_http() {
    let scratch = Scratch::new("http");
    let (mut remod, url, data) = start_remod_http(&scratch);
    let c = Client::new(&scratch, &url, &data);

    check_raw_session(&url, &data);
    check_basics(&c, &data);
    check_streaming(&c);
    check_big_file(&c, &scratch, &scratch.sub("remote"), BIG_FILE);
    check_logout(&c);

    remod.assert_running();
}
