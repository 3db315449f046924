//! `POST /chat`: parse, prepare through the chat service, call the model through the
//! metered proxy, answer as the seed's widget reads it (or as a stream).
