job "encode" {
  type = "batch"
  parameterized {
    payload       = "required"
    meta_required = ["input"]
  }
  group "encode" {
    task "run" {
      driver = "docker"
      config { image = "jrottenberg/ffmpeg" }
    }
  }
}
