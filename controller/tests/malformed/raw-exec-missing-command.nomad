job "web" {
  group "web" {
    task "api" {
      driver = "raw_exec"
      config {
        args = ["-listen", ":8080"]
      }
    }
  }
}
